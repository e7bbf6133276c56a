--- The SMQTT compatibility format of sts.group (docs/SMQTT.md): a key server
-- and members that interoperate on the wire with the Java Secure MQTT
-- reference. Insecure by design (one pre-shared key per member, a MAC over
-- the plaintext only, no sender authentication): opt-in, and it says so.
--
-- The bytes (JSON, MACs, AES-128-CBC, key material, data frames, the slot
-- tree) are made and checked in C (sts.smqtt, src/proto/smqtt.c); this file
-- holds the two state machines. Where the reference is weak we are strict on
-- our side without breaking interop: keys and IVs from the DRBG, responses
-- taken only for a request of ours (or an UPDATE rekey with a higher seq),
-- slots checked against the clock, and an authenticated leave of our own.
local sts = require "sts"
local smqtt = sts.smqtt
local options = require "sts.options"

local M = {}

M.DEFAULT_PSK = "aaaaaaaabbbbbbbbccccccccdddddddd"
local METHODS = { static = 1, update = 2, slotted = 3 }
local QOS = 2 -- the reference publishes and subscribes everything at QoS 2

local warned = false
local function warn_once()
  if warned then return end
  warned = true
  sts.log.warn("SMQTT format: keys come from a pre-shared key per member, and data is authenticated only as "
    .. "plaintext under the group's shared key: any member can forge messages, and the broker can reorder "
    .. "and replay them (native groups have neither weakness)")
end

local function unhex(s, what)
  local bytes = type(s) == "string" and sts.unhex(s)
  if not bytes then error(what .. " must be hex digits", 3) end
  return bytes
end

local check_options, set_of = options.check, options.set_of

local function method_of(name, what)
  local t = METHODS[name or "static"]
  if not t then error(what .. ": option 'method' must be \"static\", \"update\" or \"slotted\"", 3) end
  return t
end

local function now_ms()
  return math.floor(sts.time() * 1000)
end

local function random_member_id()
  local n = string.unpack(">I4", sts.random(4))
  return string.format("client-%05d", n % 100000)
end

-- --- counting what we refuse ------------------------------------------------------

-- The codec's reasons, counted under the names sessions and native groups
-- use; its own words go to the log.
local COUNTED = {
  ["bad MAC"] = "auth", ["bad padding"] = "auth", ["truncated frame"] = "truncated",
  ["bad length"] = "malformed", ["frame too big"] = "too_big",
}

local function reject(stats, what, why)
  local reason = COUNTED[why] or why:match("^(%a+): ") or why
  stats.rejected[reason] = (stats.rejected[reason] or 0) + 1
  stats.rejected_total = stats.rejected_total + 1
  local n = stats.rejected_total
  if n & (n - 1) == 0 then -- 1st, 2nd, 4th, 8th...
    sts.log.warn(string.format("smqtt %s: rejected: %s (%d rejected so far)", what, why, n))
  end
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = type(v) == "table" and copy(v) or v end
  return c
end

local function new_stats()
  return { sent = 0, received = 0, echoes = 0, rekeys = 0, rejected = {}, rejected_total = 0 }
end

-- ==================================================================================
-- A member
-- ==================================================================================

local Member = {}
Member.__index = Member

local member_options = set_of { "format", "method", "group", "member", "psk", "expires", "skew", "timeout" }

-- The key for a frame's index: the group key, or the leaf of a held slot
-- that is current (within the skew allowance).
function Member:key_for(index)
  if self.method ~= "slotted" then return self.key end
  local current = self:current_slot()
  if math.abs(index - current) > self.skew_slots then return nil, "stale_slot" end
  local key = smqtt.leaf(self.nodes, self.depth, index)
  if not key then return nil, "stale_slot" end
  return key
end

--- The key server's slot now, from the time it gave us and our clock since.
function Member:current_slot()
  local elapsed = self.ks_time + (now_ms() - self.received_at)
  return elapsed // (self.slot * 1000)
end

-- Our own frames come back from the broker; the format names no sender, so
-- they are known by their IVs (random, 16 bytes), of the last ECHOES sent.
local ECHOES = 256

function Member:remember(frame)
  local iv = frame:sub(3, 18)
  self.sent_ivs[iv] = true
  self.sent_ring[self.sent_next] , self.sent_next = iv, self.sent_next % ECHOES + 1
  local old = self.sent_ring[self.sent_next]
  if old then self.sent_ivs[old] = nil end
end

function Member:is_echo(frame)
  local iv = frame:sub(3, 18)
  if not self.sent_ivs[iv] then return false end
  self.sent_ivs[iv] = nil
  self.counts.echoes = self.counts.echoes + 1
  return true
end

function Member:on_data(payload)
  if self.status ~= "joined" or self:is_echo(payload) then return end
  local index = smqtt.index(payload)
  if not index then return reject(self.counts, self.group, "truncated frame") end
  local key, why = self:key_for(index)
  if not key then return reject(self.counts, self.group, why) end
  local text, err = smqtt.open(key, payload)
  if not text then return reject(self.counts, self.group, err) end
  self.counts.received = self.counts.received + 1
  local fn = self.handlers.message
  if fn then fn(text, { topic = self.group, slot = self.method == "slotted" and index or nil, epoch = self.epoch }) end
end

-- A response is ours only when it answers our outstanding request, or is an
-- UPDATE rekey with a seq above the last we took.
function Member:takes(resp)
  if resp.member ~= self.member or resp.group ~= self.group then return false, "not ours" end
  if self.outstanding and resp.seq >= self.outstanding then return true end
  if self.method == "update" and self.status == "joined" and resp.seq >= self.seq then return true end
  return false, "unsolicited"
end

function Member:on_response(payload)
  local resp, material = smqtt.decode_response(payload, self.psk)
  if not resp then return reject(self.counts, self.group, material == "bad MAC" and material or "malformed: " .. material) end
  local ok, why = self:takes(resp)
  if not ok then return reject(self.counts, self.group, why) end
  local rekey = self.status == "joined"
  if self.method == "slotted" then
    local _, nodes = smqtt.parse_material(material) -- the first part, k2, nobody uses
    if not nodes then return reject(self.counts, self.group, "bad key material") end
    self.nodes, self.slot, self.depth = nodes, resp.slot, resp.depth
    self.ks_time, self.received_at = resp.time, now_ms()
    self.skew_slots = math.max(1, math.ceil(self.skew / resp.slot))
  else
    local key = smqtt.parse_material(material)
    if type(key) ~= "string" then return reject(self.counts, self.group, "bad key material") end
    self.key = key
  end
  self.seq = resp.seq + 1
  self.outstanding = nil
  self.epoch = self.epoch + 1
  self.status = "joined"
  if rekey then
    self.counts.rekeys = self.counts.rekeys + 1
    if self.handlers.rekey then self.handlers.rekey(self.epoch) end
  end
  if self.joined then
    local f = self.joined
    self.joined = nil
    f:set(true)
  end
end

function Member:request()
  self.outstanding = self.seq
  local req = { member = self.member, group = self.group, seq = self.seq,
                expires = self.method == "slotted" and self.expires or nil }
  return self.client:publish(self.join_topic, smqtt.encode_request(req, self.psk), { qos = QOS })
end

function Member:send(text)
  if self.status ~= "joined" then return nil, "smqtt " .. self.group .. ": not joined" end
  local index, key = 0, self.key
  if self.method == "slotted" then
    index = self:current_slot()
    key = smqtt.leaf(self.nodes, self.depth, index)
    if not key then return nil, "smqtt " .. self.group .. ": no key for the current slot (the grant ended)" end
  end
  local frame = smqtt.seal(key, index, text)
  local ok, err = self.client:publish(self.group, frame, { qos = QOS })
  if not ok then return nil, err end
  self:remember(frame)
  self.counts.sent = self.counts.sent + 1
  return true
end

function Member:on(event, fn)
  if event ~= "message" and event ~= "rekey" and event ~= "removed" then
    error("group:on: unknown event '" .. tostring(event) .. "'", 2)
  end
  self.handlers[event] = fn
  return self
end

function Member:stats()
  return copy(self.counts)
end

function Member:state()
  return self.closed and "closed" or self.status
end

--- Leaves: our own authenticated leave (the reference has none), then the
-- subscriptions go.
function Member:leave()
  if self.closed then return end
  self.closed = true
  if self.status == "joined" then
    local msg = smqtt.encode_leave({ member = self.member, group = self.group, seq = self.seq }, self.psk)
    self.client:publish(self.leave_topic, msg, { qos = QOS })
  end
  self.client:unsubscribe(self.response_filter, self.response_handler)
  self.client:unsubscribe(self.group, self.data_handler)
  self.status = "left"
  self.key, self.nodes = nil, nil
end
Member.close = Member.leave
Member.__close = Member.leave

function M.join(client, opts)
  check_options(opts, member_options, "sts.group.join")
  local method = opts.method or "static"
  local kind = method_of(method, "sts.group.join")
  if type(opts.group) ~= "string" or opts.group == "" or opts.group:find("[+#]") then
    error("sts.group.join: option 'group' (the group's topic) is required", 2)
  end
  warn_once()
  local g = setmetatable({
    client = client, group = opts.group, method = method, format = "smqtt",
    member = opts.member or random_member_id(),
    psk = unhex(opts.psk or M.DEFAULT_PSK, "option 'psk'"),
    expires = opts.expires or 3600, skew = opts.skew or 5,
    seq = 0, epoch = 0, status = "joining", handlers = {}, counts = new_stats(),
    sent_ivs = {}, sent_ring = {}, sent_next = 1,
  }, Member)
  g.name, g.topic = g.group, g.group
  g.join_topic = "gkd/" .. kind .. "/join"
  g.leave_topic = "gkd/" .. kind .. "/leave"
  g.response_filter = "gkd/+/" .. g.member
  g.response_handler = function(_, payload) g:on_response(payload) end
  g.data_handler = function(_, payload) g:on_data(payload) end
  local ok, err = client:subscribe(g.response_filter, g.response_handler, { qos = QOS })
  if ok then ok, err = client:subscribe(g.group, g.data_handler, { qos = QOS }) end
  if ok then ok, err = g:request() end
  if not ok then
    g:leave()
    return nil, "smqtt " .. g.group .. ": " .. tostring(err)
  end
  g.joined = sts.future()
  local joined = g.joined:wait(opts.timeout or 10)
  if not joined then
    g:leave()
    return nil, "smqtt " .. g.group .. ": timeout: no answer from the key server"
  end
  return g
end

-- ==================================================================================
-- The key server
-- ==================================================================================

local Server = {}
Server.__index = Server

local server_options = set_of { "format", "method", "psk", "psk_file", "slot", "depth", "max_expires" }

--- A PSK table: "<member id> <hex key>" per line, # comments.
function M.load_psk_file(path)
  local f, err = io.open(path, "r")
  if not f then return nil, err end
  local keys, n = {}, 0
  for line in f:lines() do
    n = n + 1
    local text = line:gsub("#.*", "")
    if text:find("%S") then
      local id, hex = text:match("^%s*(%S+)%s+(%x+)%s*$")
      if not id or #hex ~= 32 then
        f:close()
        return nil, string.format("%s:%d: expected '<member id> <32 hex digits>'", path, n)
      end
      if keys[id] then
        f:close()
        return nil, string.format("%s:%d: member '%s' listed twice", path, n, id)
      end
      keys[id] = unhex(hex, "key")
    end
  end
  f:close()
  return keys
end

function Server:psk_of(member)
  return self.psks and self.psks[member] or self.psk
end

function Server:respond(kind, member, resp, material)
  resp.member = member
  local json = smqtt.encode_response(resp, self:psk_of(member), material)
  local ok, err = self.client:publish("gkd/" .. kind .. "/" .. member, json, { qos = QOS })
  if not ok then sts.log.warn("smqtt key server: could not answer " .. member .. ": " .. tostring(err)) end
  self.counts.sent = self.counts.sent + 1
end

function Server:group_state(name)
  local g = self.groups[name]
  if not g then
    g = { members = {}, order = {} }
    if self.method == "slotted" then
      g.root, g.k2 = sts.random(16), sts.random(16)
    else
      g.key = sts.random(16)
    end
    self.groups[name] = g
    sts.log.info("smqtt key server: new group " .. name)
  end
  return g
end

-- UPDATE: a new key, to every member still in the group, each with its seq + 1.
function Server:rekey(name, g)
  g.key = sts.random(16)
  self.counts.rekeys = self.counts.rekeys + 1
  for _, member in ipairs(g.order) do
    g.members[member] = g.members[member] + 1
    self:respond(2, member, { group = name, seq = g.members[member] }, smqtt.material_key(g.key))
  end
end

function Server:on_join(kind, req)
  local g = self:group_state(req.group)
  if self.method == "static" then
    self:respond(kind, req.member, { group = req.group, seq = req.seq }, smqtt.material_key(g.key))
  elseif self.method == "update" then
    if g.members[req.member] == nil then
      g.members[req.member] = req.seq
      g.order[#g.order + 1] = req.member
      self:rekey(req.group, g)
    else
      -- The reference answers a known member with its old seq, which that
      -- client discards (it stays on a stale key); we give it seq + 1, which
      -- any client takes.
      g.members[req.member] = math.max(g.members[req.member], req.seq) + 1
      self:respond(kind, req.member, { group = req.group, seq = g.members[req.member] }, smqtt.material_key(g.key))
    end
  else
    local expires = math.min(req.expires or 0, self.max_expires)
    local elapsed = now_ms() - self.started_ms
    local first, last = smqtt.grant(elapsed, self.slot, expires)
    if not first then return reject(self.counts, "key server", "empty grant") end
    if last > (1 << self.depth) - 1 then return reject(self.counts, "key server", "slot tree exhausted") end
    local nodes = smqtt.cover(g.root, self.depth, first, last)
    self:respond(kind, req.member, { group = req.group, expires = expires, slot = self.slot, depth = self.depth,
                                     time = elapsed, seq = req.seq }, smqtt.material_slotted(g.k2, nodes))
  end
  self.counts.joins = self.counts.joins + 1
  if self.on_event then self.on_event("joined", req.group, req.member, "") end
end

function Server:on_message(topic, payload, leaving)
  local kind = tonumber(topic:match("^gkd/(%d)/"))
  if kind ~= METHODS[self.method] then return reject(self.counts, "key server", "wrong method") end
  local decode, valid = smqtt.decode_request, smqtt.request_valid
  if leaving then decode, valid = smqtt.decode_leave, smqtt.leave_valid end
  local req, err = decode(payload)
  if not req then return reject(self.counts, "key server", "malformed: " .. err) end
  local psk = self:psk_of(req.member)
  if not psk then return reject(self.counts, "key server", "unknown member") end
  if not valid(req, psk) then return reject(self.counts, "key server", "bad MAC") end
  if leaving then return self:on_leave(req) end
  self:on_join(kind, req)
end

-- Our own members' authenticated leave: UPDATE rekeys the others, and the
-- leaver gets no more keys.
function Server:on_leave(req)
  local g = self.groups[req.group]
  if not g or g.members[req.member] == nil then return reject(self.counts, "key server", "leave from a non-member") end
  if req.seq < g.members[req.member] then return reject(self.counts, "key server", "stale leave") end
  g.members[req.member] = nil
  for i, m in ipairs(g.order) do
    if m == req.member then table.remove(g.order, i) break end
  end
  self.counts.leaves = self.counts.leaves + 1
  if self.on_event then self.on_event("left", req.group, req.member, "left") end
  if self.method == "update" then self:rekey(req.group, g) end
end

function Server:stats()
  local s = copy(self.counts)
  local n = 0
  for _ in pairs(self.groups) do n = n + 1 end
  s.groups = n
  return s
end

function Server:on(event, fn)
  if event ~= "event" then error("server:on: the only event is \"event\"", 2) end
  self.on_event = fn
  return self
end

function Server:close()
  if self.closed then return true end
  self.closed = true
  self.client:unsubscribe("gkd/+/join", self.join_handler)
  self.client:unsubscribe("gkd/+/leave", self.leave_handler)
  self.groups = {}
  return true
end
Server.__close = Server.close

--- Re-reads the PSK table (SIGHUP): members no longer in it are refused
-- from now on, and an UPDATE group that loses one is rekeyed without it.
function Server:reload()
  if not self.psk_file then return true end
  local psks, err = M.load_psk_file(self.psk_file)
  if not psks then return nil, err end
  self.psks = psks
  for name, g in pairs(self.groups) do
    local dropped = false
    for i = #g.order, 1, -1 do
      local member = g.order[i]
      if not psks[member] then
        table.remove(g.order, i)
        g.members[member] = nil
        dropped = true
      end
    end
    -- UPDATE: those dropped must not read what follows.
    if dropped and self.method == "update" then self:rekey(name, g) end
  end
  return true
end

-- The native key server's operator call, which this format has no use for.
function Server:save() return nil, "the SMQTT format keeps no state file" end
function Server:rotate_all()
  for name, g in pairs(self.groups) do
    if self.method == "update" then self:rekey(name, g) end
  end
  return true
end

function M.serve(client, opts)
  check_options(opts, server_options, "sts.group.serve")
  local method = opts.method or "static"
  method_of(method, "sts.group.serve")
  if opts.psk and opts.psk_file then error("sts.group.serve: give 'psk' or 'psk_file', not both", 2) end
  local psks
  if opts.psk_file then
    local err
    psks, err = M.load_psk_file(opts.psk_file)
    if not psks then return nil, err end
  elseif not opts.psk then
    error("sts.group.serve: the SMQTT format needs 'psk_file' (a key per member) or 'psk' (one shared key)", 2)
  end
  warn_once()
  local server = setmetatable({
    client = client, method = method, format = "smqtt", psks = psks, psk_file = opts.psk_file,
    psk = opts.psk and unhex(opts.psk, "option 'psk'"),
    slot = opts.slot or 10, depth = opts.depth or 16, max_expires = opts.max_expires or 7 * 86400,
    started_ms = now_ms(), groups = {},
    counts = { joins = 0, leaves = 0, rekeys = 0, sent = 0, rejected = {}, rejected_total = 0 },
  }, Server)
  server.join_handler = function(topic, payload) server:on_message(topic, payload, false) end
  server.leave_handler = function(topic, payload) server:on_message(topic, payload, true) end
  local ok, err = client:subscribe("gkd/+/join", server.join_handler, { qos = QOS })
  if ok then ok, err = client:subscribe("gkd/+/leave", server.leave_handler, { qos = QOS }) end
  if not ok then return nil, err end
  return server
end

return M
