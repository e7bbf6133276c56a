-- Sealed one-way readings through a local mosquitto, every role a separate
-- sts-lua process, against a session's handshake plus one message:
--   1. bytes on the wire per sealed reading for N, K and X, counted by a raw
--      subscriber (frame length minus plaintext length);
--   2. a sender sealing and publishing --count readings in one process (QoS 1):
--      CPU per reading to seal, to seal and publish, and the broker's;
--   3. one gateway process opening readings as fast as it can: --senders
--      processes flood it with readings sealed beforehand, so the gateway
--      (with the broker, on the 2 cores) is the bottleneck; readings per
--      second, and CPU per reading of the gateway and the broker;
--   4. a sleeping sensor's cost: one process run per reading (wake, connect,
--      send, exit): scripts/sealed-sensor.lua against a session sensor that
--      handshakes (IK) and sends one message, and a plain MQTT publish, the
--      floor of any process run; CPU of the sensor process (from its
--      shell's stat line), of the gateway or listener, and of the broker;
--   5. the handshake CPU of bench/session.lua's roles (its part 1 method:
--      os.clock around each sts.handshake; the listener's CPU per session),
--      run here on the same broker, for the in-process comparison.
--   build/sts-lua bench/sealed.lua [--count N] [--runs N] [--repeat R] [--senders P] [--part 1..5]
-- Medians of --repeat rounds. The keys are bench/session.lua's layout:
-- gateway.key/.pub, sensor-N.key and sensors.trust naming sensor-N.
-- Each role is also started by itself (see the roles below), e.g.
--   sts-lua bench/sealed.lua --role gateway -p PORT --keys DIR --count N --pattern K
local sts = require "sts"
local cli = require "sts.cli"
local test = require "sts.test"
local common = dofile((arg[0]:match("^(.*)/") or ".") .. "/common.lua")
local median = common.median

local opts = cli.parse(arg, {
  usage = "sts-lua bench/sealed.lua [--count N] [--runs N] [--repeat R] [--senders P] [--part 1..5]",
  options = {
    role = { "--role" },
    port = { "-p", "--port", number = true },
    keys = { "--keys" },
    count = { "--count", number = true, default = 5000 },
    runs = { "--runs", number = true, default = 20 },
    ["repeat"] = { "--repeat", number = true, default = 3 },
    senders = { "--senders", number = true, default = 2 },
    part = { "--part", number = true },
    pattern = { "--pattern", default = "K" },
    first = { "--first", number = true, default = 1 },
    size = { "--size", number = true, default = 32 },
  },
})

io.stdout:setvbuf("line")
sts.log.level = "warn"

local PATTERNS = { "N", "K", "X" }

local function connect()
  return assert(sts.connect{ host = "127.0.0.1", port = opts.port })
end

local function topic_of(i)
  return "bench/sealed/sensor-" .. i .. "/up"
end

local function sealer_of(i, pattern)
  return assert(sts.sealer{ identity = pattern ~= "N" and opts.keys .. "/sensor-" .. i .. ".key" or nil,
                            peer = opts.keys .. "/gateway.pub", pattern = pattern,
                            state = string.format("%s/sensor-%d.%s.state", opts.keys, i, pattern), create = true })
end

-- --- roles -----------------------------------------------------------------------

-- The gateway: opens --count readings on bench/sealed/+/up (a trust file of
-- every sensor), then prints its CPU (from when it was ready) and the wall
-- clock time of the last reading (readings reach the handler in batches, so
-- the time from the first to the last would leave out the first batch's
-- work). Stops 5 s after the last reading if some never come.
local function gateway()
  local c = connect()
  local n, first, last, last_time = 0, nil, nil, nil
  local listener = assert(sts.listen_sealed(c, { sub = "bench/sealed/+/up", identity = opts.keys .. "/gateway.key",
    trust = opts.keys .. "/sensors.trust", anonymous = opts.pattern == "N" }, function()
      n = n + 1
      last, last_time = sts.now(), sts.time()
      first = first or last
      if n == opts.count then sts.stop() end
    end))
  sts.every(0.5, function() if last and sts.now() - last > 5 then sts.stop() end end)
  sts.signal("TERM", sts.stop)
  local cpu0 = os.clock()
  print("ready")
  sts.run()
  local cpu = os.clock() - cpu0
  local elapsed = (last or 0) - (first or 0)
  print(string.format("gateway: received %d rejected %d cpu %.6f elapsed %.6f last_time %.6f", n,
    listener:stats().rejected_total, cpu, elapsed, last_time or 0))
end

-- Sensor --first: seals --count readings (timed: seal_cpu), says "sealed",
-- and on SIGUSR1 publishes them all at QoS 1 as fast as the loop writes
-- (publish_cpu), waiting for the broker's acknowledgements. --size is the
-- plaintext's length.
local function flood()
  local c = connect()
  local sealer = sealer_of(opts.first, opts.pattern)
  local topic, reading = topic_of(opts.first), string.rep("r", opts.size)
  local frames = {}
  local c0 = os.clock()
  for i = 1, opts.count do frames[i] = assert(sealer:seal(reading, topic)) end
  local seal_cpu = os.clock() - c0
  sealer:close()
  print("sealed")
  local go = sts.future()
  sts.signal("USR1", function() go:set() end)
  local c1
  sts.task(function()
    go:wait()
    c1 = os.clock()
    for i = 1, opts.count do
      assert(c:publish(topic, frames[i], { qos = 1 }))
      if i % 500 == 0 then coroutine.yield() end
    end
    assert(c:flush(60), "readings still unacknowledged after 60 s")
    sts.stop()
  end)
  sts.run()
  print(string.format("flood: readings %d seal_cpu %.6f publish_cpu %.6f", opts.count, seal_cpu, os.clock() - c1))
  c:disconnect()
end

-- A sleeping sensor with a session instead: wakes, handshakes IK with the
-- listener (bench/session.lua's listen role), sends one message, says
-- goodbye and exits.
local function session_once()
  local c = connect()
  local i = opts.first
  local s = assert(sts.handshake(c, { role = "initiator", pattern = "IK", pub = "hs/" .. i .. "/up",
    sub = "hs/" .. i .. "/down", identity = opts.keys .. "/sensor-" .. i .. ".key",
    peer = opts.keys .. "/gateway.pub", timeout = 10 }))
  assert(s:send(string.rep("r", opts.size)))
  s:close()
  assert(c:flush(10))
  c:disconnect()
end

-- The floor of a process run: wakes, publishes one plain reading, exits.
local function plain_once()
  local c = connect()
  assert(c:publish(topic_of(opts.first), string.rep("r", opts.size), { qos = 1 }))
  assert(c:flush(10))
  c:disconnect()
end

-- --- comparing -----------------------------------------------------------------

local function field(text, name)
  return tonumber(text:match(name .. " ([%d.]+)"))
end

local function us(seconds, n) return 1e6 * seconds / n end

local function make_keys(dir, n)
  assert(require("sts.keyfiles").write_pair(dir .. "/gateway"))
  local trust = {}
  for i = 1, n do
    local key <close>, public = sts.keygen()
    assert(key:save(dir .. "/sensor-" .. i .. ".key"))
    trust[i] = public:match("\n(%x+)") .. " sensor-" .. i
  end
  test.write_file(dir .. "/sensors.trust", table.concat(trust, "\n") .. "\n")
end

local function spawn_gateway(ctx, count, pattern)
  local gw = test.spawn(string.format("exec %s --role gateway -p %d --keys %s --count %d --pattern %s", ctx.me,
    ctx.port, test.quote(opts.keys), count, pattern))
  assert(gw:wait_for("ready"), gw:output())
  return gw
end

local function wire_bytes()
  print("\n1. Bytes on the wire per sealed reading (a raw subscriber; MQTT headers aside)")
  local seen = {}
  local spy = connect()
  assert(spy:subscribe("bench/wire/#", function(topic, payload) seen[topic] = #payload end, { qos = 1 }))
  local c = connect()
  local sizes = { 0, 16, 64, 1024 }
  local header = {}
  for k, size in ipairs(sizes) do header[k] = ("%7s"):format(size .. " B") end
  print(("%-3s %s   overhead (target for K: <= 100)"):format("", table.concat(header, " ")))
  for _, pattern in ipairs(PATTERNS) do
    local row, overheads = {}, {}
    for k, size in ipairs(sizes) do
      local topic = ("bench/wire/%s/%d"):format(pattern, size)
      assert(sts.send_sealed(c, topic, string.rep("w", size), {
        identity = pattern ~= "N" and opts.keys .. "/sensor-1.key" or nil, peer = opts.keys .. "/gateway.pub",
        pattern = pattern, state = ("%s/wire-%s.state"):format(opts.keys, pattern), create = true }))
      assert(test.wait_until(function() return seen[topic] end, 5), "no frame on " .. topic)
      row[k] = ("%7d"):format(seen[topic])
      overheads[#overheads + 1] = seen[topic] - size
    end
    table.sort(overheads)
    local same = overheads[1] == overheads[#overheads]
    print(("%-3s %s   %d B%s"):format(pattern, table.concat(row, " "), overheads[1],
      same and "" or (" to %d B"):format(overheads[#overheads])))
  end
  c:disconnect()
  spy:disconnect()
end

-- Rounds of the flood: the gateway first, then --senders senders sealing
-- their share, then publishing it together on a signal. The rate: readings
-- over the time from that signal to the gateway's last reading. CPU of
-- every process: the senders' and the gateway's own (os.clock), the
-- broker's from /proc around the round.
local function flood_round(ctx, pattern)
  local total = opts.count - opts.count % opts.senders
  local gw = spawn_gateway(ctx, total, pattern)
  local broker0 = common.cpu_seconds(ctx.broker.process.pid)
  local senders = {}
  for i = 1, opts.senders do
    senders[i] = test.spawn(string.format("exec %s --role flood -p %d --keys %s --count %d --pattern %s --first %d",
      ctx.me, ctx.port, test.quote(opts.keys), total // opts.senders, pattern, i))
  end
  for i, s in ipairs(senders) do assert(s:wait_for("sealed", 300), "sender " .. i .. ": " .. s:output()) end
  local go = sts.time()
  for _, s in ipairs(senders) do os.execute("kill -USR1 " .. s.pid) end
  local r = { seal = 0, publish = 0 }
  for i, s in ipairs(senders) do
    assert(s:wait_for("flood: [^\n]*", 300), "sender " .. i .. ": " .. s:output())
    r.seal, r.publish = r.seal + field(s:output(), "seal_cpu"), r.publish + field(s:output(), "publish_cpu")
  end
  assert(gw:wait_for("gateway: [^\n]*", 300), gw:output())
  local out = gw:output()
  r.broker = common.cpu_seconds(ctx.broker.process.pid) - broker0
  r.received, r.gateway = field(out, "received"), field(out, "cpu")
  r.rate = r.received / (field(out, "last_time") - go)
  assert(r.received == total and field(out, "rejected") == 0, out)
  r.n = total
  return r
end

local function medians(runs, keys)
  local m = {}
  for _, key in ipairs(keys) do
    local list = {}
    for k, r in ipairs(runs) do list[k] = r[key] end
    m[key] = median(list)
  end
  return m
end

local function sender_and_gateway(ctx, part)
  local rows = {}
  for _, pattern in ipairs(PATTERNS) do
    local runs = {}
    for k = 1, opts["repeat"] do runs[k] = flood_round(ctx, pattern) end
    rows[pattern] = medians(runs, { "seal", "publish", "broker", "gateway", "rate", "n" })
    rows[pattern].rates = {}
    for k, r in ipairs(runs) do rows[pattern].rates[k] = string.format("%.0f", r.rate) end
  end
  if part == nil or part == 2 then
    print(string.format("\n2. A sender sealing and publishing %d readings of %d B in one process, QoS 1 "
      .. "(%d processes, median of %d rounds)", opts.count, opts.size, opts.senders, opts["repeat"]))
    print(string.format("%-3s %14s %22s", "", "seal us", "seal + publish us"))
    for _, pattern in ipairs(PATTERNS) do
      local r = rows[pattern]
      print(string.format("%-3s %14.1f %22.1f", pattern, us(r.seal, r.n), us(r.seal + r.publish, r.n)))
    end
  end
  if part == nil or part == 3 then
    print(string.format("\n3. One gateway process opening %d readings from %d flooding senders "
      .. "(median of %d rounds; the broker on the same 2 cores)", opts.count, opts.senders, opts["repeat"]))
    print(string.format("%-3s %14s %18s %16s   %s", "", "readings/s", "gateway CPU us", "broker CPU us", "rounds"))
    for _, pattern in ipairs(PATTERNS) do
      local r = rows[pattern]
      print(string.format("%-3s %14.0f %18.1f %16.1f   %s", pattern, r.rate, us(r.gateway, r.n), us(r.broker, r.n),
        table.concat(r.rates, " ")))
    end
  end
end

-- A process run is a few ms of CPU: common.with_cpu's clock ticks (10 ms)
-- are too coarse, so bash's `times` reports it (getrusage of its children,
-- to the ms).
local function with_rusage(cmd)
  return "bash -c " .. test.quote(cmd .. "; times")
end

local function rusage_cpu(output)
  local um, us_, sm, ss = output:match("[^\n]*\n?(%d+)m([%d.]+)s (%d+)m([%d.]+)s%s*$")
  if not um then return 0 / 0 end
  return 60 * tonumber(um) + tonumber(us_) + 60 * tonumber(sm) + tonumber(ss)
end

-- --runs process runs of cmd(i) one after another, each through
-- with_rusage; the receiving process (started by start(), stopping after
-- --runs) and the broker sampled around them. Returns the median and mean
-- CPU of a run, its median wall time, and the receiver's and the broker's
-- CPU per run.
local function process_runs(ctx, start, cmd)
  local receiver = start()
  local broker0 = common.cpu_seconds(ctx.broker.process.pid)
  local cpus, walls, total = {}, {}, 0
  for i = 1, opts.runs do
    local t0 = sts.now()
    local p = test.spawn(with_rusage(cmd(i)))
    assert(p:wait(30) == 0, p:output())
    walls[i] = sts.now() - t0
    cpus[i] = rusage_cpu(p:output())
    total = total + cpus[i]
  end
  local r = { cpu = median(cpus), mean = total / opts.runs, wall = median(walls) }
  if receiver then
    assert(receiver:wait_for("[%w]+: [^\n]*cpu [%d.]+", 30), receiver:output())
    r.receiver = field(receiver:output(), "cpu") / opts.runs
    receiver:kill()
  end
  r.broker = (common.cpu_seconds(ctx.broker.process.pid) - broker0) / opts.runs
  return r
end

local function session_role(ctx, role, extra)
  return string.format("exec %s bench/session.lua --role %s -p %d --keys %s %s", test.quote(test.sts_lua()), role,
    ctx.port, test.quote(opts.keys), extra)
end

local function sleeping_sensor(ctx)
  print(string.format("\n4. A sleeping sensor: one process run per reading (wake, connect, send, exit), %d runs "
    .. "one after another; CPU ms per reading (mean and median of the runs; wall: start to exit)", opts.runs))
  local lua = test.quote(test.sts_lua())
  local rows = {
    { "sealed K (scripts/sealed-sensor.lua)", function() return spawn_gateway(ctx, opts.runs, "K") end,
      function(i)
        return string.format("%s scripts/sealed-sensor.lua --host 127.0.0.1 -p %d --identity %s --gateway %s "
          .. "--state %s --create --topic %s %s >/dev/null", lua, ctx.port, test.quote(opts.keys .. "/sensor-1.key"),
          test.quote(opts.keys .. "/gateway.pub"), test.quote(opts.keys .. "/sleeper.state"), topic_of(1),
          string.rep("r", opts.size) .. i)
      end },
    { "session IK + 1 message", function()
        local l = test.spawn(session_role(ctx, "listen", string.format("--count %d --pattern IK", opts.runs)))
        assert(l:wait_for("ready"), l:output())
        return l
      end,
      function(i)
        return string.format("%s --role session-once -p %d --keys %s --first %d", ctx.me, ctx.port,
          test.quote(opts.keys), i)
      end },
    { "plain MQTT publish (the floor)", function() return nil end,
      function() return string.format("%s --role plain-once -p %d", ctx.me, ctx.port) end },
  }
  print(string.format("%-38s %10s %10s %10s %18s %12s", "", "mean", "median", "wall ms", "gateway/listener", "broker"))
  for _, row in ipairs(rows) do
    local r = process_runs(ctx, row[2], row[3])
    print(string.format("%-38s %10.1f %10.1f %10.1f %18s %12.2f", row[1], 1000 * r.mean, 1000 * r.cpu, 1000 * r.wall,
      r.receiver and string.format("%.2f", 1000 * r.receiver) or "-", 1000 * r.broker))
  end
end

local function session_handshakes(ctx)
  local n = 50
  print(string.format("\n5. bench/session.lua's handshake CPU (its roles, %d handshakes one at a time), in-process", n))
  print(string.format("%-4s %16s %16s", "", "initiator ms", "responder ms"))
  for _, pattern in ipairs({ "IK", "XX" }) do
    local l = test.spawn(session_role(ctx, "listen", string.format("--count %d --pattern %s", n, pattern)))
    assert(l:wait_for("ready"), l:output())
    local i = test.spawn(session_role(ctx, "initiate", string.format("--count %d --pattern %s", n, pattern)))
    assert(i:wait_for("initiator: [^\n]*", 120), i:output())
    assert(l:wait_for("listener: [^\n]*", 30), l:output())
    print(string.format("%-4s %16.3f %16.3f", pattern, 1000 * field(i:output(), "cpu_median"),
      1000 * field(l:output(), "cpu") / n))
    i:kill()
    l:kill()
  end
end

local function compare()
  sts.log.level = "error"
  local broker = test.broker()
  local ctx = { broker = broker, port = broker.port, me = test.quote(test.sts_lua()) .. " bench/sealed.lua" }
  opts.keys, opts.port = test.tmpdir(), broker.port
  make_keys(opts.keys, math.max(opts.runs, opts.senders, 50))
  print(string.format("sts-lua %s, mosquitto on 127.0.0.1:%d", sts.version, broker.port))
  local part = opts.part
  if part == nil or part == 1 then wire_bytes() end
  if part == nil or part == 2 or part == 3 then sender_and_gateway(ctx, part) end
  if part == nil or part == 4 then sleeping_sensor(ctx) end
  if part == nil or part == 5 then session_handshakes(ctx) end
  broker:stop()
  test.cleanup()
end

local roles = { gateway = gateway, flood = flood, ["session-once"] = session_once, ["plain-once"] = plain_once }
if opts.role then
  assert(roles[opts.role], "unknown role " .. opts.role)()
else
  compare()
end
