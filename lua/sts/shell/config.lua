--- The shell's config files, read into what a session needs.
--
-- sts.config.load parses the syntax; this module knows the keys: which
-- exist, their types, and what only makes sense together (sts_mode and aes,
-- tls and its files, a password and its user), and turns values into
-- options for sts.connect, sts.handshake, sts.group.join and sts.sealer.
-- Every error is one line naming
-- the file, the line of the key (when the key is there) and the key, as
--   configs/x:4: key 'aes': sts_mode = master needs aes = ecb or cbc
-- and is raised with error(message, 0) for the shell to print.
local sts = require "sts"

local Config = {}
Config.__index = Config

-- --- the keys and their types ---------------------------------------------------

local BOOLEANS = { ["true"] = true, yes = true, ["1"] = true, ["false"] = false, no = false, ["0"] = false }

local TEXT = { fits = function() return true end }
local NONEMPTY = { wants = "a non-empty value", fits = function(v) return v ~= "" end }
local BOOLEAN = { wants = "true/false/yes/no/1/0", fits = function(v) return BOOLEANS[v] ~= nil end }

--- Decimal digits only, no sign, within [min, max].
local function integer(min, max)
  return { wants = ("an integer from %d to %d"):format(min, max), fits = function(v)
    local n = v:find("^%d+$") and tonumber(v)
    return n ~= nil and n >= min and n <= max
  end }
end

--- A group's name as sts.group accepts it.
local GROUP_NAME = { wants = "1 to 64 of A-Z a-z 0-9 _ . -", fits = function(v)
  return #v <= 64 and v:find("^[%w_.-]+$") ~= nil
end }

local function choice(...)
  local allowed = {}
  for _, c in ipairs{ ... } do allowed[c] = true end
  return { wants = "one of " .. table.concat({ ... }, "|"), fits = function(v) return allowed[v] end }
end

local KEYS = {
  url = NONEMPTY, port = integer(1, 65535), username = TEXT, password = TEXT,
  subtop = NONEMPTY, pubtop = NONEMPTY, clientid = TEXT,
  sts_mode = choice("nosec", "master", "slave"), aes = choice("null", "ecb", "cbc"),
  mqtt_version = integer(3, 5), qos = integer(0, 2), clean_session = BOOLEAN,
  keep_alive = integer(0, 65535), -- seconds; MQTT's field is 16 bits
  is_retained = BOOLEAN, id_master = TEXT, id_slave = TEXT,
  protocol = choice("sts", "legacy", "group", "sealed"), pattern = choice("XX", "IK", "NN"),
  identity = NONEMPTY, peer = NONEMPTY, trust = NONEMPTY,
  tls = BOOLEAN, cafile = NONEMPTY, capath = NONEMPTY, certfile = NONEMPTY, keyfile = NONEMPTY,
  tls_insecure = BOOLEAN, tls_version = choice("tlsv1.2", "tlsv1.3"),
  group = GROUP_NAME, keyserver = NONEMPTY, prefix = NONEMPTY,
  gateway = NONEMPTY, state = NONEMPTY, create = BOOLEAN,
}
-- Sealed readings are one-way Noise patterns, not sessions' handshakes.
local SEALED_PATTERN = choice("K", "X", "N")
local ALIASES = { ip = "url" } -- the original shell's older configs say ip

--- A value quoted back in a message: at most 40 bytes, non-printable bytes
-- as '?', so a message stays one readable line.
local function shown(value)
  return (value:sub(1, 40):gsub("[^ -~]", "?")) .. (#value > 40 and "..." or "")
end

function Config.load(path)
  local values, lines = sts.config.load(path)
  if not values then error(lines, 0) end
  local config = setmetatable({ path = path, values = values, lines = lines }, Config)
  config:check()
  return config
end

function Config:fail(key, fmt, ...)
  local where = self.lines[key] and ("%s:%d"):format(self.path, self.lines[key]) or self.path
  error(("%s: key '%s': " .. fmt):format(where, key, ...), 0)
end

--- The keys in file order, so the first error reported is the file's first.
function Config:keys()
  local keys = {}
  for key in pairs(self.values) do keys[#keys + 1] = key end
  table.sort(keys, function(a, b) return self.lines[a] < self.lines[b] end)
  return keys
end

--- Every key known, set once (url or ip) and of its type.
function Config:check()
  local set = {} -- setting -> the key that set it
  for _, key in ipairs(self:keys()) do
    local setting = ALIASES[key] or key
    local kind = KEYS[setting] or self:fail(key, "unknown key")
    if setting == "pattern" and self.values.protocol == "sealed" then kind = SEALED_PATTERN end
    local other = set[setting]
    if other then self:fail(key, "same setting as '%s' on line %d", other, self.lines[other]) end
    set[setting] = key
    local v = self.values[key]
    if not kind.fits(v) then self:fail(key, "expected %s, got '%s'", kind.wants, shown(v)) end
  end
end

-- --- what the values mean together ------------------------------------------------

function Config:bool(key, default)
  local v = self.values[key]
  if v == nil then return default end
  return BOOLEANS[v]
end

function Config:integer(key, default)
  return math.tointeger(tonumber(self.values[key] or default))
end

local NATIVE_KEYS = { "pattern", "peer", "trust" }
local GROUP_KEYS = { "group", "keyserver", "prefix" }
local SEALED_KEYS = { "gateway", "state", "create" }
-- A group has no roles, its own cipher and its own topic (from prefix and group).
local NOT_IN_GROUPS = { sts_mode = true, aes = true, pattern = true, peer = true, trust = true,
                        subtop = true, pubtop = true, gateway = true, state = true, create = true }
-- A sealed sender has no roles, no handshake and nothing to receive.
local NOT_IN_SEALED = { sts_mode = true, aes = true, peer = true, trust = true, subtop = true,
                        group = true, keyserver = true, prefix = true }

--- Fails on the first key of the file that `refused` names.
function Config:refuse(refused, why)
  for _, key in ipairs(self:keys()) do
    if refused[key] then self:fail(key, "%s", why) end
  end
end

--- The kind of session: "nosec", "legacy" (the original protocol), "sts"
-- (the native one), "group" or "sealed", the role (master or slave) and the
-- original's cipher.
function Config:kind()
  local v = self.values
  if v.protocol == "group" then
    self:refuse(NOT_IN_GROUPS, "not used with protocol = group: remove it")
    return "group"
  end
  if v.protocol == "sealed" then
    self:refuse(NOT_IN_SEALED, "not used with protocol = sealed: remove it")
    return "sealed"
  end
  for _, key in ipairs(GROUP_KEYS) do
    if v[key] then self:fail(key, "only used with protocol = group") end
  end
  for _, key in ipairs(SEALED_KEYS) do
    if v[key] then self:fail(key, "only used with protocol = sealed") end
  end
  local mode = v.sts_mode or self:fail("sts_mode", "missing: set nosec, master or slave")
  local aes = v.aes or "null"
  if v.protocol == "sts" then
    if mode == "nosec" then self:fail("sts_mode", "protocol = sts needs master or slave") end
    if aes ~= "null" then self:fail("aes", "protocol = sts has its own cipher: remove aes") end
    return "sts", mode
  end
  for _, key in ipairs(NATIVE_KEYS) do
    if v[key] then self:fail(key, "only used with protocol = sts") end
  end
  if v.identity then self:fail("identity", "only used with protocol = sts, group or sealed") end
  if mode == "nosec" then
    if aes ~= "null" then self:fail("aes", "sts_mode = nosec encrypts nothing: set aes = null") end
    return "nosec"
  end
  if aes == "null" then self:fail("aes", "sts_mode = %s needs aes = ecb or cbc", mode) end
  return "legacy", mode, aes
end

--- The topics: from the config, else the original's m2s / s2m by role.
function Config:topics(role)
  local v = self.values
  local defaults = { master = { "s2m", "m2s" }, slave = { "m2s", "s2m" } }
  local sub = v.subtop or (defaults[role] or {})[1]
  local pub = v.pubtop or (defaults[role] or {})[2]
  if not sub then self:fail("subtop", "missing: sts_mode = nosec needs subtop and pubtop") end
  if not pub then self:fail("pubtop", "missing: sts_mode = nosec needs subtop and pubtop") end
  return sub, pub
end

--- url (or ip): a host name, or tcp://host[:port] / mqtt://host[:port].
function Config:broker()
  local v = self.values
  local key = v.ip and "ip" or "url"
  local url = v[key] or "localhost"
  local scheme, rest = url:match("^(%w+)://(.*)$")
  if scheme and scheme ~= "tcp" and scheme ~= "mqtt" then
    self:fail(key, "unsupported scheme '%s://' (TLS is set with tls = true)", scheme)
  end
  local host, port = (rest or url):match("^([^:]*):(%d+)$") -- an IPv6 address keeps its colons
  host = host or rest or url
  if port and v.port and port ~= v.port then
    self:fail("port", "%s differs from the port in %s = %s", v.port, key, url)
  end
  return host, math.tointeger(tonumber(port or v.port or "1883"))
end

local TLS_KEYS = { "cafile", "capath", "certfile", "keyfile", "tls_insecure", "tls_version" }

function Config:tls()
  local v = self.values
  if not self:bool("tls", false) then
    for _, key in ipairs(TLS_KEYS) do
      if v[key] then self:fail(key, "needs tls = true") end
    end
    return nil
  end
  if not (v.cafile or v.capath) then self:fail("tls", "tls = true needs cafile or capath") end
  if (v.certfile == nil) ~= (v.keyfile == nil) then
    self:fail(v.certfile and "certfile" or "keyfile", "certfile and keyfile go together")
  end
  return { cafile = v.cafile, capath = v.capath, certfile = v.certfile, keyfile = v.keyfile,
           insecure = self:bool("tls_insecure", false), version = v.tls_version }
end

local MQTT_VERSIONS = { ["3"] = "3.1", ["4"] = "3.1.1", ["5"] = "5" }

--- Options for sts.connect.
function Config:connect_options()
  local v = self.values
  local o = { timeout = 5, tls = self:tls() }
  o.host, o.port = self:broker()
  if v.clientid and v.clientid ~= "" then o.client_id = v.clientid end
  if v.username and v.username ~= "" then
    o.username, o.password = v.username, v.password
  elseif v.password and v.password ~= "" then
    self:fail("password", "a password needs a username")
  end
  o.protocol = MQTT_VERSIONS[v.mqtt_version or "4"]
  if v.keep_alive then
    o.keepalive = self:integer("keep_alive")
    if o.keepalive < 5 then self:fail("keep_alive", "must be at least 5 seconds") end
  end
  o.clean_session = self:bool("clean_session", true)
  if not o.clean_session and not o.client_id then
    self:fail("clean_session", "a persistent session (false) needs a clientid")
  end
  return o
end

--- Checks a key file through fn (sts.public_key or sts.fingerprint) and
-- returns what it gives; its error names the file, not fn.
function Config:key_file(key, fn)
  local result, err = fn(self.values[key])
  if not result then self:fail(key, "%s", (err:gsub("^[%w_]+: ", ""))) end
  return result
end

--- Options for sts.handshake (without pub, sub and wait), and this side's
-- fingerprint (nil with pattern NN and no identity). Key files are paths
-- from the shell's working directory.
function Config:native_options(role)
  local v = self.values
  local o = { role = role, identity = v.identity, peer = v.peer, trust = v.trust, pattern = v.pattern,
              qos = v.qos and self:integer("qos") }
  local unauthenticated = v.pattern == "NN"
  local fingerprint
  if v.identity then
    fingerprint = sts.fingerprint(self:key_file("identity", sts.public_key))
  elseif not unauthenticated then
    self:fail("identity", "missing: protocol = sts needs this side's private key file (or pattern = NN)")
  end
  if v.peer then self:key_file("peer", sts.fingerprint) end
  if v.trust then
    local ok, err = sts.check_trust(v.trust) -- not io.open, which waits forever on a FIFO
    if not ok then self:fail("trust", "%s", err) end
  end
  if not (v.peer or v.trust or unauthenticated) then
    self:fail("peer", "missing: protocol = sts needs the peer's public key file (peer) or a file of "
      .. "accepted keys (trust), or pattern = NN")
  end
  return o, fingerprint
end

--- Options for sts.group.join (keys as files, checked here so an error
-- names the config's line), this member's fingerprint and the key server's.
function Config:group_options()
  local v = self.values
  if not v.group then self:fail("group", "missing: protocol = group needs the group's name") end
  if not v.identity then self:fail("identity", "missing: protocol = group needs this member's private key file") end
  if not v.keyserver then self:fail("keyserver", "missing: protocol = group needs the key server's public key file") end
  local fingerprint = sts.fingerprint(self:key_file("identity", sts.public_key))
  local keyserver = self:key_file("keyserver", sts.fingerprint)
  return { group = v.group, identity = v.identity, keyserver = v.keyserver, prefix = v.prefix,
           qos = v.qos and self:integer("qos") }, fingerprint, keyserver
end

--- Options for sts.sealer (keys as files, checked here so an error names
-- the config's line), the topic, this sender's fingerprint (nil with
-- pattern N: it sends no identity) and the gateway's.
function Config:sealed_options()
  local v = self.values
  local pattern = v.pattern or "K"
  local fingerprint
  if pattern == "N" then
    if v.identity then self:fail("identity", "pattern = N sends no identity: remove it") end
  elseif v.identity then
    fingerprint = sts.fingerprint(self:key_file("identity", sts.public_key))
  else
    self:fail("identity", "missing: protocol = sealed needs this sender's private key file (or pattern = N)")
  end
  if not v.gateway then self:fail("gateway", "missing: protocol = sealed needs the gateway's public key file") end
  local gateway = self:key_file("gateway", sts.fingerprint)
  if not v.state then
    self:fail("state", "missing: protocol = sealed needs a file to keep the reading counter in")
  end
  -- A missing counter is an error unless asked for: a lost state file must
  -- not restart the counter unnoticed (the gateway would refuse every reading).
  local create = self:bool("create", false)
  if not create then
    local f, err = io.open(v.state)
    if not f then self:fail("state", "%s (a new sender sets create = true)", err) end
    f:close()
  end
  if not v.pubtop then self:fail("pubtop", "missing: protocol = sealed needs the topic the readings go to") end
  return { identity = v.identity, peer = v.gateway, pattern = pattern, state = v.state, create = create },
    v.pubtop, fingerprint, gateway
end

return Config
