--- The lab protocol's message handling (lua/sts/lab.lua over sts.dh and
-- sts.fernet), both sides, with the MQTT client a table that hands each
-- publication on at once, so nothing waits.
--
-- Input: a mode byte, then messages, each a topic and a payload
-- (string.pack ">s1s2").
--  - "R..." (or any even byte): the responder (lab.serve) receives the
--    messages as published on their topics; it must skip what it cannot use
--    without an error.
--  - odd byte: the requester (lab.request) gets the first message's payload
--    as the key exchange response and the second's as the response token;
--    it must return the text or nil, a message and what failed.
-- Keys come from the generator restarted for each input
-- (fuzz_random_reset), so the seeds' tokens decrypt. No error may reach a
-- handler or a task (sts.stats().handler_errors stays put).
-- STS_FUZZ_SEEDS=DIR writes the seeds (genuine exchanges) into DIR and exits.
local sts = require "sts"
local lab = require "sts.lab"
local fuzzing = require "fuzzing"

sts.log.level = "error" -- the responder warns of every message it skips
local PARAMS_PEM = [[
-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA///////////JD9qiIWjCNMTGYouA3BzRKQJOCIpnzHQCC76mOxOb
IlFKCHmONATd75UZs806QxswKwpt8l8UN0/hNW1tUcJF5IW1dmJefsb0TELppjft
awv/XLb0Brft7jhr+1qJn6WunyQRfEsf5kkoZlHs5Fs9wgB8uKFjvwWY2kg2HFXT
mmkWP6j9JM9fg2VdI9yjrZYcYvNWIIVSu57VKQdwlpZtZww1Tkq8mATxdGwIyhgh
fDKQXkYuNs474553LBgOhgObJ4Oi7Aeij7XFXfBvTFLJ3ivL9pVYFxg5lUl86pVq
5RXSJhiY+gUQFXKOWoqsqmj//////////wIBAg==
-----END DH PARAMETERS-----
]]
local params = assert(sts.dh.params(PARAMS_PEM))

local function matches(filter, topic)
  local pattern = "^" .. filter:gsub("[%^%$%(%)%%%.%[%]%*%-%?]", "%%%0"):gsub("%+", "[^/]*"):gsub("#$", ".*") .. "$"
  return topic:find(pattern) ~= nil
end

local function new_client()
  local client = { handlers = {}, published = {} }
  function client.subscribe(_, filter, handler) client.handlers[#client.handlers + 1] = { filter, handler } return true end
  function client.unsubscribe() end
  function client.flush() return true end
  function client.publish(_, topic, payload)
    fuzzing.check(type(payload) == "string", "published a %s", type(payload))
    client.published[#client.published + 1] = { topic, payload }
    if client.on_publish then client.on_publish(topic, payload) end
    return true
  end
  function client.deliver(topic, payload)
    for _, h in ipairs(client.handlers) do
      if matches(h[1], topic) then h[2](topic, payload) end
    end
  end
  return client
end

local function messages(input, pos)
  local list = {}
  while pos <= #input and #list < 16 do
    local ok, topic, payload, next_pos = pcall(string.unpack, ">s1s2", input, pos)
    if not ok then break end
    list[#list + 1] = { topic, payload }
    pos = next_pos
  end
  return list
end

local function serve(list)
  local client = new_client()
  lab.serve(client, { params = params, pool = 0 })
  for _, m in ipairs(list) do client.deliver(m[1], m[2]) end
end

local function request(list)
  local client = new_client()
  local replies = { "key-exchange", "uppercase" }
  client.on_publish = function(topic)
    for i, reply in ipairs(replies) do
      if list[i] and topic == lab.topic("ab123", reply, "request") then
        client.deliver(lab.topic("ab123", reply, "response"), list[i][2])
      end
    end
  end
  local key = params:keypair()
  local text, err, what = lab.request(client, { netid = "ab123", action = "uppercase", message = "hello", key = key,
                                                timeout = 0.001 })
  key:close()
  if text then
    fuzzing.check(type(text) == "string", "request gave a %s", type(text))
  else
    fuzzing.check(type(err) == "string" and (what == "key" or what == "token" or what == "timeout"),
      "request failed with %s, %s", tostring(err), tostring(what))
  end
end

local function run(input)
  local errors = sts.stats().handler_errors
  fuzz_random_reset(1)
  local mode = input:byte(1) or 0
  if mode % 2 == 0 then serve(messages(input, 2)) else request(messages(input, 2)) end
  fuzzing.check(sts.stats().handler_errors == errors, "an error in a handler or a task (see its traceback above)")
end

--- Genuine exchanges, made with the keys each mode will make.
local function write_seeds(dir)
  local function write(name, mode, list)
    local parts = { mode }
    for _, m in ipairs(list) do parts[#parts + 1] = string.pack(">s1s2", m[1], m[2]) end
    local f = assert(io.open(dir .. "/" .. name, "wb"))
    f:write(table.concat(parts))
    f:close()
  end
  fuzz_random_reset(1)
  local first = params:keypair() -- what either side makes first
  fuzz_random_reset(2)
  local other = params:keypair()
  local key = assert(other:derive(first.public))
  local token = sts.fernet.encrypt(key, "hello")
  write("serve", "R", { { "ab123/key-exchange/request", other.public }, { "ab123/uppercase/request", token },
    { "ab123/reverse/request", token }, { "ab123/nope/request", token }, { "cd456/shuffle/request", token } })
  write("request", "Q", { { "", other.public }, { "", sts.fernet.encrypt(key, "HELLO") } })
end

local seeds = os.getenv("STS_FUZZ_SEEDS")
if seeds then
  write_seeds(seeds)
  os.exit(0)
end
return run
