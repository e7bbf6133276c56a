--- sts.lab: the university lab protocol, a Diffie-Hellman key exchange then
-- Fernet-encrypted requests and responses over MQTT (docs/LAB.md).
--
--   local lab = require "sts.lab"
--   local params = assert(lab.load_params("dhparam4096.pem"))
--   -- the requester (scripts/secure_mqtt_client.lua):
--   local text, err = lab.request(client, { netid = "ab123", action = "uppercase",
--                                           message = "hello", key = params:keypair() })
--   -- the responder (scripts/lab_responder.lua):
--   lab.serve(client, { params = params })
--
-- Topics: <netid>/key-exchange/request|response carry the two public keys
-- (PEM), then <netid>/<action>/request|response carry Fernet tokens under
-- HKDF-SHA256 of the DH secret. Everything is published and subscribed at
-- QoS 1. Nothing authenticates the exchange: the broker, or anyone who can
-- publish on these topics, can read and change every message.
local sts = require "sts"

local lab = {}

lab.DEFAULT_PORT = 1884
lab.DEFAULT_DHPARAM = "dhparam4096.pem"
lab.QOS = 1

--- "<netid>/<action>/<direction>", direction "request" or "response".
function lab.topic(netid, action, direction)
  return netid .. "/" .. action .. "/" .. direction
end

--- A netid is one topic level: no '/', and no wildcard or NUL.
function lab.valid_netid(netid)
  return type(netid) == "string" and netid ~= "" and not netid:find("[/+#%z]")
end

-- --- actions -------------------------------------------------------------------

-- The characters of a text: UTF-8 characters if it is valid UTF-8, else
-- its bytes, so reverse and shuffle never split a character.
local function characters(text)
  local list = {}
  if utf8.len(text) then
    for _, c in utf8.codes(text) do list[#list + 1] = utf8.char(c) end
  else
    for i = 1, #text do list[i] = text:sub(i, i) end
  end
  return list
end

-- Python's str.title(): in each run of letters the first is uppercased and
-- the rest lowercased ("they're 3rd" -> "They'Re 3Rd"). Bytes of UTF-8
-- characters count as letters, so "naïve" stays one word, but only ASCII
-- letters change case.
local function title_case(text)
  return (text:gsub("[%a\128-\255]+", function(word)
    return word:sub(1, 1):upper() .. word:sub(2):lower()
  end))
end

local function shuffle(text)
  local list = characters(text)
  for i = #list, 2, -1 do
    local j = math.random(i)
    list[i], list[j] = list[j], list[i]
  end
  return table.concat(list)
end

local function reverse(text)
  local list, out = characters(text), {}
  for i = #list, 1, -1 do out[#out + 1] = list[i] end
  return table.concat(out)
end

--- The actions a responder performs, by name. Case changes touch ASCII
-- letters only; reverse and shuffle work on UTF-8 characters.
lab.actions = {
  uppercase = string.upper,
  lowercase = string.lower,
  ["title-case"] = title_case,
  reverse = reverse,
  shuffle = shuffle,
}
lab.action_names = { "uppercase", "lowercase", "title-case", "reverse", "shuffle" }

-- --- parameters ------------------------------------------------------------------

function lab.file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- Reads a PKCS#3 "BEGIN DH PARAMETERS" file; returns params, or nil and a
-- message naming the file.
function lab.load_params(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local pem = f:read("a")
  f:close()
  local params, perr = sts.dh.params(pem)
  if not params then return nil, path .. ": " .. perr end
  return params
end

-- --- the requester -----------------------------------------------------------------

--- One request: key exchange, then the encrypted message and its answer.
-- opts: netid, action, message, key (a key pair from params:keypair()),
-- timeout (seconds for the whole exchange, default 10). Returns the response
-- text, or nil, a message and what failed: "broker", "timeout", "key" (the
-- responder's public key is unusable) or "token" (the response does not
-- decrypt). Waits, so call it from the main chunk or a task.
function lab.request(client, opts)
  local netid, action, key = opts.netid, opts.action, opts.key
  local deadline = sts.now() + (opts.timeout or 10)
  local function remaining() return math.max(deadline - sts.now(), 0.001) end
  local exchanged, answered = sts.future(), sts.future()
  local subscriptions = {
    [lab.topic(netid, "key-exchange", "response")] = function(_, pem) exchanged:set(pem) end,
    [lab.topic(netid, action, "response")] = function(_, token) answered:set(token) end,
  }
  local function finish(...)
    for filter in pairs(subscriptions) do client:unsubscribe(filter) end
    return ...
  end

  -- Subscribed first: the broker handles our packets in order, so the
  -- subscriptions are in place before the responder can see the request.
  for filter, handler in pairs(subscriptions) do
    local ok, err = client:subscribe(filter, handler, { qos = lab.QOS })
    if not ok then return finish(nil, err, "broker") end
  end
  local ok, err = client:publish(lab.topic(netid, "key-exchange", "request"), key.public, { qos = lab.QOS })
  if not ok then return finish(nil, err, "broker") end
  sts.log.debug("lab: key exchange request sent")

  local pem = exchanged:wait(remaining())
  if not pem then return finish(nil, "no key exchange response (is a responder running?)", "timeout") end
  local lab_key, kerr = key:derive(pem)
  if not lab_key then return finish(nil, "key exchange failed: " .. kerr, "key") end
  sts.log.debug("lab: key derived")

  ok, err = client:publish(lab.topic(netid, action, "request"), sts.fernet.encrypt(lab_key, opts.message), { qos = lab.QOS })
  if not ok then return finish(nil, err, "broker") end
  local token = answered:wait(remaining())
  if not token then return finish(nil, "no response to the " .. action .. " request", "timeout") end
  local text, terr = sts.fernet.decrypt(lab_key, token)
  if not text then return finish(nil, "the response does not decrypt: " .. terr, "token") end
  sts.log.debug("lab: response decrypted")
  return finish(text)
end

-- --- the responder -------------------------------------------------------------------

-- How long a requester gets from its key exchange to its request, during
-- which the key pool is not refilled; how idle the responder must be first.
local AWAIT_REQUEST = 1.0
local IDLE = 0.005

--- Serves every netid on `client`: answers key exchanges and performs the
-- actions. opts: params (the group of the expected requesters, for a pool of
-- key pairs made in advance; without it every key pair is made on demand),
-- pool (how many, default 2). A requester in another group is answered in
-- its own group. Bad requests are logged and skipped.
function lab.serve(client, opts)
  opts = opts or {}
  local params, pool_size = opts.params, opts.pool or 2
  local sessions = {}   -- netid -> { peer_pem, key = future of the Fernet key }
  local expecting = {}  -- netid -> when its key exchange was answered
  local pool = {}
  local refill

  local function skip(fmt, ...)
    sts.log.warn("lab responder: " .. string.format(fmt, ...) .. ", skipped")
  end

  -- A key exchange costs two modular exponentiations (~36 ms each at 4096
  -- bits): making our key pair and deriving the secret. The key pairs are
  -- made ahead of time, while no exchange is under way, so a requester
  -- waits for the derivation only, and that runs after our public key is
  -- on its way, in parallel with the requester's own derivation.
  local function busy()
    local now = sts.now()
    for netid, since in pairs(expecting) do
      if now - since < AWAIT_REQUEST then return true end
      expecting[netid] = nil
    end
    return false
  end

  local function refill_when_idle()
    if refill then refill:cancel() end
    refill = nil
    if not params or #pool >= pool_size then return end
    refill = sts.after(IDLE, function()
      refill = nil
      if not busy() then
        pool[#pool + 1] = params:keypair()
        sts.log.debug("lab responder: key pool at " .. #pool)
      end
      refill_when_idle()
    end)
  end

  local function key_pair(group)
    if params and group == params and #pool > 0 then return table.remove(pool) end
    return group:keypair()
  end

  local function on_key_exchange(netid, pem)
    local current = sessions[netid]
    -- The same request again (a QoS 1 duplicate, or a broker that delivers
    -- once per matching subscription) keeps the key it made.
    if current and current.peer_pem == pem then return end
    local peer, err = sts.dh.public(pem)
    if not peer then return skip("%s: key exchange: %s", netid, err) end
    local key = key_pair(peer:params())
    local session = { peer_pem = pem, key = sts.future() }
    sessions[netid] = session
    expecting[netid] = sts.now()
    local ok, perr = client:publish(lab.topic(netid, "key-exchange", "response"), key.public, { qos = lab.QOS })
    if not ok then sts.log.warn("lab responder: " .. netid .. ": " .. perr) end
    sts.log.debug("lab responder: " .. netid .. ": key exchange answered")
    sts.task(function()
      client:flush(1) -- our public key leaves before we spend time deriving
      session.key:set(key:derive(peer))
      key:close()
    end)
  end

  local function on_request(netid, action, token)
    local transform = lab.actions[action]
    if not transform then return skip("%s: unknown action '%s'", netid, action) end
    local session = sessions[netid]
    if not session then return skip("%s: %s request before any key exchange", netid, action) end
    expecting[netid] = nil
    sts.task(function()
      local key, err = session.key:wait(AWAIT_REQUEST)
      if not key then return skip("%s: %s request: no key (%s)", netid, action, err) end
      local text, terr = sts.fernet.decrypt(key, token)
      if not text then return skip("%s: %s request: %s", netid, action, terr) end
      local ok, perr = client:publish(lab.topic(netid, action, "response"),
        sts.fernet.encrypt(key, transform(text)), { qos = lab.QOS })
      if not ok then return skip("%s: %s response: %s", netid, action, perr) end
      sts.log.info(string.format("lab responder: %s: %s answered", netid, action))
    end)
  end

  -- A key exchange request matches both filters; each handler takes its own.
  assert(client:subscribe("+/key-exchange/request", function(topic, pem)
    on_key_exchange(topic:match("^([^/]+)"), pem)
    refill_when_idle()
  end, { qos = lab.QOS }))
  assert(client:subscribe("+/+/request", function(topic, token)
    local netid, action = topic:match("^([^/]+)/([^/]+)/request$")
    if action ~= "key-exchange" then on_request(netid, action, token) end
    refill_when_idle()
  end, { qos = lab.QOS }))
  refill_when_idle()
end

return lab
