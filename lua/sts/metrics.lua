--- Operator metrics: the stats() of clients, listeners, sessions (and any
-- other sts object with stats()) as Prometheus text exposition (format
-- 0.0.4), written atomically to a file for node_exporter's textfile collector.
--
--   local metrics = require "sts.metrics"
--   metrics.add(client)                           -- labelled client="<id>"
--   metrics.add(listener, { labels = { name = "gateway" }, sessions = true })
--   metrics.textfile("/var/lib/prometheus/node-exporter/sts.prom", { interval = 15 })
--
-- Every number in an object's stats() becomes sts_<kind>_<field>, a table of
-- numbers (rejected = { reason = n }) one metric with a label per key, so
-- fields added to stats() later are exported without a change here. The
-- fields known below get their Prometheus type (counters end in _total);
-- others are exported untyped. docs/API.md, "Operator metrics".
local sts = require "sts"

local metrics = {}

-- Fields that go up and down; every other known one counts.
local GAUGES = {
  sessions = true, established = true, half_open = true, queued = true, handshake_jobs = true,
  unacked = true, pending = true, memory = true, senders = true, last_seen = true, last_seen_ms = true,
}
-- Fields already totals of another: counters under their own name.
local TOTALS = { rejected_total = true }
-- Fields in seconds (as *_ms fields are once scaled): named so.
local SECONDS = { last_seen = true }
-- The label of a table field's keys.
local KEY_LABELS = { rejected = "reason", rejected_by_peer = "peer", by_state = "state" }
-- Fields by kind whose type is known: anything else is untyped.
local KNOWN = {
  client = { "connects", "disconnects", "messages_in", "messages_out", "oversize_in", "unclaimed_dropped", "unacked" },
  session = { "bytes_in", "bytes_out", "last_seen", "last_seen_ms", "sent", "received", "frames_in", "frames_out", "handshakes",
              "retransmits", "rekeys", "resyncs_sent", "resyncs_received", "memory", "rejected", "rejected_total" },
  listener = { "sessions", "established", "half_open", "handshakes", "handshake_jobs", "queued", "cookies_sent",
               "rejected", "rejected_total", "rejected_by_peer" },
  group = { "sent", "received", "echoes", "rekeys", "pending", "rejected_total", "memory", "rejected" },
  sealed_listener = { "received", "rejected", "rejected_total", "senders", "state_failures" },
}
local known = {}
for kind, fields in pairs(KNOWN) do
  known[kind] = {}
  for _, f in ipairs(fields) do known[kind][f] = true end
end

-- --- the exposition format -----------------------------------------------------

local function escape_label(v)
  return (tostring(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function format_labels(labels)
  local keys = {}
  for k in pairs(labels) do keys[#keys + 1] = k end
  if #keys == 0 then return "" end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = string.format('%s="%s"', k, escape_label(labels[k])) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function format_value(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  return string.format("%.17g", v)
end

local function sanitize(name)
  return (name:gsub("[^%w_]", "_"))
end

-- A field's metric: name, type, value scale. Milliseconds are exported in
-- seconds and memory in bytes, Prometheus's base units.
local function describe(kind, field)
  local base = "sts_" .. sanitize(kind) .. "_" .. sanitize(field)
  if field:match("_ms$") then base = base:gsub("_ms$", "_seconds") end
  if SECONDS[field] then base = base .. "_seconds" end
  if field == "memory" then base = base .. "_bytes" end
  local scale = field:match("_ms$") and 0.001 or 1
  if not (known[kind] and known[kind][field]) then return base, "untyped", scale end
  if GAUGES[field] then return base, "gauge", scale end
  if TOTALS[field] then return base, "counter", scale end
  return base .. "_total", "counter", scale
end

-- --- the registry ----------------------------------------------------------------

local Registry = {}
Registry.__index = Registry

--- A registry of objects to export; the module's functions use a default one.
function metrics.new()
  return setmetatable({ entries = {}, counts = {} }, Registry)
end

local function kind_of(obj)
  local mt = getmetatable(obj)
  local name = type(mt) == "table" and rawget(mt, "__name")
  return type(name) == "string" and name:match("^sts%.(.+)$")
end

-- The labels an object gets when it is given none that name it.
local function default_labels(self, obj, kind)
  if kind == "client" then return { client = obj:id() } end
  if kind == "session" then return { topic = obj.topic } end
  self.counts[kind] = (self.counts[kind] or 0) + 1
  return { name = kind .. "-" .. self.counts[kind] }
end

--- reg:add(obj [, { labels = { k = v }, sessions = true }]): exports obj's
-- stats() from now on. labels tell it apart from others of its kind
-- (default: a client's id, a session's topic, else "kind-N"); sessions =
-- true on a listener exports each established session of it too.
function Registry:add(obj, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "labels" and k ~= "sessions" then error("sts.metrics: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local kind = kind_of(obj)
  if not kind or type(obj.stats) ~= "function" then
    error("sts.metrics: an sts object with stats() expected, got " .. tostring(obj), 2)
  end
  local labels = {}
  for k, v in pairs(opts.labels or default_labels(self, obj, kind)) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") or k:match("^__") then
      error("sts.metrics: bad label name '" .. tostring(k) .. "'", 2)
    end
    labels[k] = tostring(v)
  end
  self:remove(obj)
  self.entries[#self.entries + 1] = { obj = obj, kind = kind, labels = labels, sessions = opts.sessions }
  return obj
end

function Registry:remove(obj)
  for i, e in ipairs(self.entries) do
    if e.obj == obj then return table.remove(self.entries, i) and true end
  end
  return false
end

-- stats() of an open object, or nil once it is closed.
local function stats_of(obj)
  if type(obj.state) == "function" and obj:state() == "closed" then return nil end
  local ok, st = pcall(obj.stats, obj)
  return ok and type(st) == "table" and st or nil
end

local function with(labels, k, v)
  local t = { [k] = v }
  for a, b in pairs(labels) do t[a] = b end
  return t
end

-- Adds the samples of one stats table to families (name -> family).
local function collect(families, kind, labels, st)
  for field, value in pairs(st) do
    local name, mtype, scale = describe(kind, field)
    local family = families[name]
    if not family then
      family = { type = mtype, help = string.format("%s:stats().%s", kind, field), samples = {} }
      families[name] = family
    end
    if type(value) == "number" then
      family.samples[#family.samples + 1] = { labels, value * scale }
    elseif type(value) == "boolean" then
      family.samples[#family.samples + 1] = { labels, value and 1 or 0 }
    elseif type(value) == "table" then
      local key = KEY_LABELS[field] or "key"
      for k, v in pairs(value) do
        if type(v) == "number" then family.samples[#family.samples + 1] = { with(labels, key, k), v * scale } end
      end
    end
  end
end

local function collect_sessions(families, listener_labels, listener)
  local ok, sessions = pcall(listener.sessions, listener)
  if not ok then return end
  for topic, session in pairs(sessions) do
    local st = stats_of(session)
    if st then collect(families, "session", with(listener_labels, "topic", topic), st) end
  end
end

local function render_families(families)
  local names = {}
  for name, f in pairs(families) do
    if #f.samples > 0 then names[#names + 1] = name end
  end
  table.sort(names)
  local out = {}
  for _, name in ipairs(names) do
    local f = families[name]
    out[#out + 1] = string.format("# HELP %s %s\n# TYPE %s %s\n", name, f.help, name, f.type)
    local lines = {}
    for i, s in ipairs(f.samples) do lines[i] = name .. format_labels(s[1]) .. " " .. format_value(s[2]) end
    table.sort(lines)
    out[#out + 1] = table.concat(lines, "\n") .. "\n"
  end
  return table.concat(out)
end

--- The exposition text of every registered object still open (closed ones
-- are dropped), and the process's own: sts_handler_errors_total, sts_info.
function Registry:render()
  local families = {
    sts_info = { type = "gauge", help = "sts-lua version", samples = { { { version = sts.version }, 1 } } },
    sts_handler_errors_total = { type = "counter", help = "errors raised by handlers (sts.stats().handler_errors)",
                                 samples = { { {}, sts.stats().handler_errors } } },
  }
  local open = {}
  for _, e in ipairs(self.entries) do
    local st = stats_of(e.obj)
    if st then
      open[#open + 1] = e
      collect(families, e.kind, e.labels, st)
      if e.sessions and e.kind == "listener" then collect_sessions(families, e.labels, e.obj) end
    end
  end
  self.entries = open
  return render_families(families)
end

--- Writes render() to path atomically (sts.write_file_atomic: a temporary
-- file beside it, synced and renamed over it), so the collector never reads
-- half a file. true | nil, message.
function Registry:write(path)
  return sts.write_file_atomic(path, self:render())
end

--- Writes the file now and then every opts.interval seconds (default 15);
-- returns the timer. A failed write is logged (once until it works again).
function Registry:textfile(path, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "interval" then error("sts.metrics.textfile: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local interval = opts.interval or 15
  if type(interval) ~= "number" or not (interval > 0) then
    error("sts.metrics.textfile: option 'interval' must be a positive number of seconds", 2)
  end
  if type(path) ~= "string" or not path:match("%.prom$") then
    error("sts.metrics.textfile: the path must end in .prom (the textfile collector reads only those)", 2)
  end
  local failing
  local function write()
    local ok, err = self:write(path)
    if not ok and err ~= failing then sts.log.warn("metrics: cannot write " .. path .. ": " .. err) end
    failing = not ok and err or nil
  end
  write()
  return sts.every(interval, write)
end

local default = metrics.new()
for _, name in ipairs({ "add", "remove", "render", "write", "textfile" }) do
  metrics[name] = function(...) return default[name](default, ...) end
end

return metrics
