-- Operator metrics (lua/sts/metrics.lua): the stats() of a real client,
-- listener and session through a real mosquitto, as Prometheus text, read by
-- the real consumer: prometheus-node-exporter's textfile collector on a
-- loopback port, fetched over HTTP like a Prometheus server would.
local sts = require "sts"
local test = require "sts.test"
local keyfiles = require "sts.keyfiles"
local metrics = require "sts.metrics"

local NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"

-- Is l one sample line of the exposition format 0.0.4: a name, labels
-- (name="value" pairs, \\ \" \n escaped), a value?
local function is_sample(l)
  local rest = l:match("^[%a_:][%w_:]*(.*)$")
  if not rest then return false end
  if rest:sub(1, 1) == "{" then
    rest = rest:sub(2)
    repeat
      local label, after = rest:match('^[%a_][%w_]*="(.-[^\\])"(.*)$')
      if not label then label, after = rest:match('^[%a_][%w_]*=""(.*)$'), nil end
      if not label then return false end
      rest = after or label
      local sep = rest:sub(1, 1)
      rest = rest:sub(2)
    until sep == "}"
  end
  return rest:match("^ [-+]?[%w.]+$") ~= nil
end

local function lines_of(text)
  local t = {}
  for l in text:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- The value of the sample `name{labels}` (labels exactly as written), or nil.
local function value(text, series)
  for _, l in ipairs(lines_of(text)) do
    local s, v = l:match("^(.*) (%S+)$")
    if s == series then return tonumber(v) end
  end
end

-- GET /metrics from 127.0.0.1:port through netcat; the body.
local function scrape(port)
  local p = assert(io.popen(string.format("printf 'GET /metrics HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' | nc -w 5 127.0.0.1 %d", port)))
  local response = p:read("a")
  p:close()
  return response:match("^HTTP/1%.%d 200.-\r\n\r\n(.*)$")
end

describe("sts.metrics", function()
  local broker, dir, gateway, sensor, listener, session, served
  local spawned = {}

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
    keyfiles.write_pair(dir .. "/bob")
    keyfiles.write_pair(dir .. "/alice")
    test.write_file(dir .. "/bob.trust", test.read_file(dir .. "/alice.pub"):match("\n(%x+)") .. " alice\n")
    gateway = assert(sts.connect(broker:options{ client_id = "metrics-gateway" }))
    listener = assert(sts.listen(gateway, { sub = "m/+/up", pub = "m/+/down", identity = dir .. "/bob.key",
      trust = dir .. "/bob.trust" }, function(s) served = s end))
    assert(gateway:flush(5))
    sensor = assert(sts.connect(broker:options{ client_id = "metrics-sensor" }))
    session = assert(sts.handshake(sensor, { role = "initiator", pub = "m/alice/up", sub = "m/alice/down",
      identity = dir .. "/alice.key", peer = dir .. "/bob.pub" }))
    for i = 1, 3 do assert(session:send("reading " .. i)) end
    assert.truthy(test.wait_until(function() return served and served:stats().received == 3 end))
  end)
  after_each(function()
    for _, p in ipairs(spawned) do p:kill("KILL") end
    spawned = {}
  end)
  teardown(function()
    sensor:close()
    gateway:close()
    broker:stop()
    test.cleanup()
  end)

  local function registry()
    local reg = metrics.new()
    reg:add(gateway)
    reg:add(listener, { labels = { name = "gateway" }, sessions = true })
    reg:add(session)
    return reg
  end

  it("renders every stats() field in the exposition format, with types and help", function()
    local text = registry():render()
    for _, l in ipairs(lines_of(text)) do
      if not l:match("^# HELP ") and not l:match("^# TYPE [%w_]+ [%a]+$") then assert.is_true(is_sample(l), l) end
    end
    assert.equal(1, value(text, 'sts_listener_handshakes_total{name="gateway"}'))
    assert.equal(1, value(text, 'sts_listener_established{name="gateway"}'))
    assert.equal(listener:stats().sessions, value(text, 'sts_listener_sessions{name="gateway"}'))
    assert.equal(3, value(text, 'sts_session_sent_total{topic="m/alice/down"}'))
    assert.equal(3, value(text, 'sts_session_received_total{name="gateway",topic="m/alice/up"}'))
    local st = gateway:stats()
    assert.equal(st.messages_in, value(text, 'sts_client_messages_in_total{client="metrics-gateway"}'))
    assert.equal(served:stats().bytes_in, value(text, 'sts_session_bytes_in_total{name="gateway",topic="m/alice/up"}'))
    -- Milliseconds become seconds, Prometheus's base unit.
    assert.is_true(value(text, 'sts_session_last_seen_seconds{name="gateway",topic="m/alice/up"}') < 60)
    assert.matches("# TYPE sts_listener_established gauge\n", text)
    assert.matches("# TYPE sts_client_messages_in_total counter\n", text)
    assert.matches("# HELP sts_client_messages_in_total client:stats%(%).messages_in\n", text)
    assert.equal(0, value(text, "sts_handler_errors_total"))
    assert.equal(1, value(text, 'sts_info{version="' .. sts.version .. '"}'))
  end)

  it("exports table fields with a label per key, and fields it does not know untyped", function()
    local reg = metrics.new()
    -- A stand-in with the shape of a stats() to come, under a kind of its own.
    local future = setmetatable({}, { __name = "sts.widget", __index = {
      stats = function() return { frobs = 7, rejected = { ["bad \"quote\""] = 2 }, healthy = true } end } })
    reg:add(future, { labels = { name = "w1" } })
    local text = reg:render()
    assert.matches("# TYPE sts_widget_frobs untyped\n", text)
    assert.equal(7, value(text, 'sts_widget_frobs{name="w1"}'))
    assert.equal(2, value(text, 'sts_widget_rejected{name="w1",reason="bad \\"quote\\""}'))
    assert.equal(1, value(text, 'sts_widget_healthy{name="w1"}'))
  end)

  it("drops objects once closed, and refuses what it cannot export", function()
    local reg = metrics.new()
    local c = assert(sts.connect(broker:options{ client_id = "metrics-short-lived" }))
    reg:add(c)
    assert.matches('client="metrics%-short%-lived"', reg:render())
    c:close()
    assert.not_matches("short%-lived", reg:render())
    assert.error_matches(function() reg:add({}) end, "an sts object with stats%(%) expected")
    assert.error_matches(function() reg:add(gateway, { label = {} }) end, "unknown option 'label'")
    assert.error_matches(function() reg:add(gateway, { labels = { ["bad-name"] = 1 } }) end, "bad label name")
    assert.error_matches(function() reg:textfile(dir .. "/x.txt") end, "must end in .prom")
    assert.error_matches(function() reg:textfile(dir .. "/x.prom", { interval = 0 }) end, "positive number")
  end)

  it("keeps the textfile current, replacing it whole", function()
    local path = dir .. "/current.prom"
    local reg = registry()
    local timer = reg:textfile(path, { interval = 0.1 })
    assert.equal(3, value(test.read_file(path), 'sts_session_sent_total{topic="m/alice/down"}'))
    assert(session:send("reading 4"))
    assert.truthy(test.wait_until(function()
      return value(test.read_file(path) or "", 'sts_session_sent_total{topic="m/alice/down"}') == 4
    end))
    timer:cancel()
    -- Only the file itself is left: no temporary file beside it.
    local p = io.popen("ls " .. test.quote(dir) .. " | grep -c prom")
    assert.equal("1", p:read("l"))
    p:close()
  end)

  it("is read by prometheus-node-exporter's textfile collector", function()
    assert(io.open(NODE_EXPORTER), NODE_EXPORTER .. " missing: apt-get install prometheus-node-exporter")
    local textdir = test.tmpdir()
    assert(registry():write(textdir .. "/sts.prom"))
    local exporter, port
    for _ = 1, 10 do
      port = math.random(20000, 59999)
      exporter = test.spawn(string.format("exec %s --web.listen-address=127.0.0.1:%d --collector.disable-defaults "
        .. "--collector.textfile --collector.textfile.directory=%s", NODE_EXPORTER, port, test.quote(textdir)))
      spawned[#spawned + 1] = exporter
      local up = test.wait_until(function()
        return exporter:output():match("Listening on") or not exporter:alive()
      end, 10)
      if up and exporter:alive() then break end
      exporter = nil
    end
    assert.truthy(exporter, "node_exporter did not start")
    local body = scrape(port)
    assert.truthy(body, "no answer from node_exporter on port " .. port)
    -- The collector parsed our file: no error, and our samples as we wrote them.
    assert.equal(0, value(body, "node_textfile_scrape_error"))
    assert.equal(1, value(body, 'sts_listener_handshakes_total{name="gateway"}'))
    assert.equal(served:stats().received, value(body, 'sts_session_received_total{name="gateway",topic="m/alice/up"}'))
    assert.equal(gateway:stats().connects, value(body, 'sts_client_connects_total{client="metrics-gateway"}'))
    assert.matches("# TYPE sts_listener_established gauge\n", body)
  end)
end)
