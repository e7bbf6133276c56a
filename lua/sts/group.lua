--- sts.group: encrypted one-to-many messaging through a key server
-- (docs/API.md, "Groups"; the wire format is docs/PROTOCOL.md, "Groups").
--
-- A member reaches the key server through a pairwise session whose key it
-- has pinned (so the handshake is IK); the key server authenticates members
-- by their identity keys and authorizes them by its access list. Group keys
-- travel only inside those sessions, and live only in C memory. The data
-- path (sealing, opening, replay windows, the roster) is in C too
-- (src/lua/lgroup.c); this file wires sessions, listeners and options.
local sts = require "sts"
local core = require "sts.group.core"
local options = require "sts.options"

local group = {}

local DEFAULT_PREFIX = "sts/group"

local check_options, set_of = options.check, options.set_of

--- The topic a group's frames travel on.
function group.topic(name, prefix)
  return (prefix or DEFAULT_PREFIX) .. "/data/" .. name
end

-- The topics of one member's session with the key server: a fresh random tag
-- per join, so two members (or two joins of one process) never share one.
local function session_topics(prefix, tag)
  return prefix .. "/ks/" .. tag .. "/up", prefix .. "/ks/" .. tag .. "/down"
end

local function will_topic(prefix)
  return prefix .. "/will"
end

--- The MQTT will a member's connection should carry, so the key server hears
-- at once when it dies: pass it as sts.connect's `will`.
function group.will(client_id, prefix)
  return { topic = will_topic(prefix or DEFAULT_PREFIX), payload = client_id, qos = 1 }
end

-- --- members ----------------------------------------------------------------------

local join_options = set_of { "format", "group", "identity", "keyserver", "prefix", "topic", "timeout", "grant",
                              "keepalive", "qos", "client_id" }

-- format = "smqtt": the Java SMQTT reference's wire format (sts/group/smqtt.lua).
local function check_format(opts, what)
  if opts.format == nil or opts.format == "native" then return false end
  if opts.format == "smqtt" then return true end
  error(what .. ": option 'format' must be \"native\" or \"smqtt\"", 3)
end

-- The key server is gone (it restarted, or its session ended): the keys we
-- hold keep working while we handshake again, backing off, and rejoin with the
-- sender index we hold.
local function reconnect(g, client, session_options)
  local delay = 1
  while g:state() == "joined" do
    sts.sleep(delay)
    if g:state() ~= "joined" then return end
    local s = sts.handshake(client, session_options)
    if s then
      g:attach(s)
      return
    end
    delay = math.min(delay * 2, 30)
  end
end

--- Joins a group: a session with the key server, then its key. Waits (see
-- "Calls that wait"); returns the group, or nil and why.
function group.join(client, opts)
  if check_format(opts, "sts.group.join") then return require("sts.group.smqtt").join(client, opts) end
  check_options(opts, join_options, "sts.group.join")
  if opts.identity == nil then error("sts.group.join: option 'identity' is required", 2) end
  if opts.keyserver == nil then error("sts.group.join: option 'keyserver' (its public key) is required", 2) end
  local prefix = opts.prefix or DEFAULT_PREFIX
  local identity = opts.identity
  if type(identity) ~= "userdata" then
    local key, err = sts.load_key(identity)
    if not key then return nil, err end
    identity = key -- loaded once: a reconnect needs no file
  end
  local g, err = core.member(client, {
    group = opts.group, topic = opts.topic or group.topic(opts.group or "", prefix),
    client_id = opts.client_id or client:id(), grant = opts.grant, keepalive = opts.keepalive, qos = opts.qos,
  })
  if not g then return nil, err end
  local pub, sub = session_topics(prefix, sts.hex(sts.random(8)))
  local session_options = { role = "initiator", pub = pub, sub = sub, identity = identity,
                            peer = opts.keyserver, timeout = opts.timeout, qos = opts.qos }
  local s, herr = sts.handshake(client, session_options)
  if not s then
    g:close()
    return nil, "group " .. opts.group .. ": the key server: " .. herr
  end
  local ok, jerr = g:attach(s, opts.timeout or 10)
  if not ok then
    g:close()
    return nil, "group " .. opts.group .. ": " .. jerr
  end
  g:_reconnect(function(member) sts.task(reconnect, member, client, session_options) end)
  return g
end

-- --- the key server ----------------------------------------------------------------

local serve_options = set_of { "format", "identity", "acl", "state", "prefix", "method", "cipher", "signed", "grace",
                               "slot", "depth", "skew", "grant", "max_grant", "idle", "resume", "groups",
                               "max_sessions" }
local core_options = set_of { "state", "method", "cipher", "signed", "grace", "slot", "depth", "skew",
                              "grant", "max_grant", "idle", "resume", "groups" }

local Server = {}
Server.__index = Server

--- Re-reads the access list: members it no longer allows are removed at once.
function Server:reload()
  return self.core:acl(self.acl)
end

--- A new key for group (STATIC's operator rotation; any method).
function Server:rotate(name)
  return self.core:rotate(name)
end

--- A new key (or tree) for every group.
function Server:rotate_all()
  for _, name in ipairs(self.core:groups()) do assert(self.core:rotate(name)) end
  return true
end

--- The names of the groups that have been joined.
function Server:groups()
  return self.core:groups()
end

function Server:save()
  return self.core:save()
end

function Server:stats()
  return self.core:stats()
end

--- { epoch, members } of a group, or nil if it has none yet.
function Server:group(name)
  return self.core:group(name)
end

--- fn(event, group, member, text) for "joined", "refused", "left",
-- "removed", "rekeyed", "rejected".
function Server:on(event, fn)
  if event ~= "event" then error("server:on: the only event is \"event\"", 2) end
  self.core:on_event(fn)
  return self
end

--- Saves the state (with a state file), then stops serving. Members keep
-- the keys they hold and come back when a key server serves again.
function Server:close()
  if self.closed then return true end
  self.closed = true
  local ok, err = true, nil
  if self.state then ok, err = self.core:save() end
  self.core:close()
  self.listener:close()
  self.client:unsubscribe(will_topic(self.prefix), self.on_will)
  return ok, err
end
Server.__close = Server.close

--- Serves groups over client: sessions from members on PREFIX/ks/+/up, keys
-- for the groups the ACL file gives them. Nothing waits.
function group.serve(client, opts)
  if check_format(opts, "sts.group.serve") then return require("sts.group.smqtt").serve(client, opts) end
  check_options(opts, serve_options, "sts.group.serve")
  if opts.identity == nil then error("sts.group.serve: option 'identity' is required", 2) end
  if opts.acl == nil then error("sts.group.serve: option 'acl' (a file) is required", 2) end
  local settings = {}
  for k, v in pairs(opts) do
    if core_options[k] then settings[k] = v end
  end
  local ks, err = core.server(settings)
  if not ks then return nil, err end
  local ok, aerr = ks:acl(opts.acl)
  if not ok then
    ks:close()
    return nil, aerr
  end
  local prefix = opts.prefix or DEFAULT_PREFIX
  local up, down = session_topics(prefix, "+")
  local server = setmetatable({ core = ks, client = client, acl = opts.acl, prefix = prefix, state = opts.state },
                              Server)
  -- Every authenticated key may handshake: the ACL decides inside the
  -- session, so a member that is not listed hears why.
  server.listener = sts.listen(client, { sub = up, pub = down, identity = opts.identity, trust = "any",
                                         max_sessions = opts.max_sessions }, function(s) ks:attach(s) end)
  server.on_will = function(_, client_id) ks:will(client_id) end
  local sok, serr = client:subscribe(will_topic(prefix), server.on_will, { qos = 1 })
  if not sok then
    server:close()
    return nil, serr
  end
  return server
end

return group
