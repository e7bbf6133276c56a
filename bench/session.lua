-- Native STS sessions through a local mosquitto, in separate sts-lua processes:
--   1. handshake latency and CPU per pattern (XX, IK, NN): median of N;
--   2. throughput of a session against plain MQTT, QoS 0, per payload size
--      and cipher suite: msg/s and the CPU per message of sender, broker and
--      receiver (/proc), median of --runs rounds alternating plain and each
--      suite; the ratio is plain's CPU per message over the session's;
--   3. bytes on the wire per ENC message and per handshake, counted by a raw
--      subscriber on the session topics;
--   4. memory of a listener holding --sessions established sessions.
--   STS_BUILD_DIR=build build/sts-lua bench/session.lua [--part 1|2|3|4] [--count M] [--runs N]
--     [--size 64,256,1024,16384] [--suite 25519_ChaChaPoly_SHA256,25519_AESGCM_SHA256]
--     [--handshakes N] [--sessions N] [--data DIR]
--   --data DIR: parts 1 and 2 also write DIR/handshakes.dat and
--   DIR/throughput.dat, the tables bench/plot draws.
-- Each role is also started by itself (see the roles below), e.g.
--   sts-lua bench/session.lua --role enc-recv -p PORT --count N --size S --keys DIR
local sts = require "sts"
local cli = require "sts.cli"

local opts = cli.parse(arg, {
  usage = "sts-lua bench/session.lua [--part 1|2|3|4] [--count M] [--runs N] [--size S,...] [--suite NAME,...] "
    .. "[--handshakes N] [--sessions N] [--data DIR]",
  options = {
    role = { "--role" },
    part = { "--part", number = true },
    port = { "-p", "--port", number = true },
    count = { "--count", number = true, default = 200000 },
    handshakes = { "--handshakes", number = true, default = 100 },
    sessions = { "--sessions", number = true, default = 1000 },
    runs = { "--runs", number = true, default = 7 },
    size = { "--size", default = "64,256,1024,16384" },
    pattern = { "--pattern", default = "XX" },
    suite = { "--suite" },
    keys = { "--keys" },
    parallel = { "--parallel", number = true, default = 1 },
    hold = { "--hold", flag = true },
    data = { "--data" },
  },
})
local SUITES = "25519_ChaChaPoly_SHA256,25519_AESGCM_SHA256"

io.stdout:setvbuf("line")

local function connect()
  return assert(sts.connect{ host = "127.0.0.1", port = opts.port })
end

local common = dofile((arg[0]:match("^(.*)/") or ".") .. "/common.lua")
local median, percentile, rss_kb = common.median, common.percentile, common.rss_kb

-- Identities made by the comparing process in opts.keys: gateway.key/.pub,
-- a trust file of the sensors, and sensor-N.key for each sensor (read once:
-- the handshakes measured do not read files).
local sensor_keys = {}
local function sensor_identity(i)
  sensor_keys[i] = sensor_keys[i] or assert(sts.load_key(opts.keys .. "/sensor-" .. i .. ".key"))
  return sensor_keys[i]
end

local function security(role_is_responder)
  if opts.pattern == "NN" then return { pattern = "NN", suite = opts.suite } end
  if role_is_responder then
    return { identity = opts.keys .. "/gateway.key", trust = opts.keys .. "/sensors.trust",
             pattern = opts.pattern }
  end
  return { pattern = opts.pattern, peer = opts.keys .. "/gateway.pub", suite = opts.suite }
end

-- --- roles -----------------------------------------------------------------------

-- A listener on hs/+/up: reports, once `count` sessions are established (or
-- as many as the initiator says it completed, on DONE_TOPIC), the CPU it used
-- and its memory (from when it listened, its trust list read). Its RSS is
-- read before the stats tables that sum the sessions' memory are made, so
-- that it grew by the sessions only.
local DONE_TOPIC = "bench/done"
local function listen()
  local c = connect()
  local o = security(true)
  o.sub, o.pub, o.timeout, o.retransmit = "hs/+/up", "hs/+/down", 10, 0.5
  local n, want = 0, opts.count
  local listener = assert(sts.listen(c, o, function()
    n = n + 1
    if n == want then sts.stop() end
  end))
  assert(c:subscribe(DONE_TOPIC, function(_, payload)
    want = math.min(want, tonumber(payload))
    if n >= want then sts.stop() end
  end, { qos = 1 }))
  collectgarbage("collect")
  local rss_before, cpu_before = rss_kb(), os.clock()
  print("ready")
  sts.run()
  local cpu = os.clock() - cpu_before
  collectgarbage("collect")
  local rss_after = rss_kb()
  local memory = 0
  for _, s in pairs(listener:sessions()) do memory = memory + s:stats().memory end
  print(string.format("listener: sessions %d cpu %.6f memory %d rss_before %d rss_after %d",
    n, cpu, memory, rss_before, rss_after))
end

-- `count` handshakes to the listener, `parallel` at a time, each on its own
-- topics; prints the latency and CPU of each, and a summary.
local function initiate()
  local c = connect()
  local latencies, cpus, sessions, failures = {}, {}, {}, 0
  local next_index, running = 0, 0
  local function one(i)
    local o = security(false)
    o.role, o.pub, o.sub, o.timeout, o.retransmit = "initiator", "hs/sensor-" .. i .. "/up", "hs/sensor-" .. i .. "/down", 10, 0.5
    if opts.pattern ~= "NN" then o.identity = sensor_identity(i) end
    local t0, c0 = sts.now(), os.clock()
    local s, err = sts.handshake(c, o)
    if s then
      latencies[#latencies + 1] = sts.now() - t0
      cpus[#cpus + 1] = os.clock() - c0
      sessions[#sessions + 1] = s
    else
      failures = failures + 1
      io.stderr:write("handshake ", i, ": ", tostring(err), "\n")
    end
  end
  local done = sts.future()
  local function start_next()
    if next_index == opts.count then
      if running == 0 then done:set() end
      return
    end
    next_index = next_index + 1
    running = running + 1
    local i = next_index
    sts.task(function()
      one(i)
      running = running - 1
      start_next()
    end)
  end
  local t0, c0 = sts.now(), os.clock()
  for _ = 1, opts.parallel do start_next() end
  done:wait()
  local wall, cpu = sts.now() - t0, os.clock() - c0
  print(string.format("initiator: handshakes %d failed %d latency_median %.6f latency_p95 %.6f cpu_median %.6f cpu_total %.6f wall %.3f",
    #latencies, failures, median(latencies), percentile(latencies, 0.95), median(cpus), cpu, wall))
  sts.sleep(0.5) -- the last confirmations and AUTHREQs go out
  assert(c:publish(DONE_TOPIC, tostring(#latencies), { qos = 1 }))
  c:flush(5)
  -- --hold: the sessions stay up until this process is killed (a listener
  -- measuring them must not see them close).
  if opts.hold then sts.sleep(600) end
end

local ENC_UP, ENC_DOWN = "bench/enc/up", "bench/enc/down"

-- The receiving end of a session (the responder): counts messages as
-- bench/pubsub.lua's receiver does.
local function enc_recv()
  local c = connect()
  print("ready")
  local o = security(true)
  o.role, o.pub, o.sub, o.qos, o.retransmit = "responder", ENC_DOWN, ENC_UP, 0, 0.1
  o.pattern = nil
  local s = assert(sts.handshake(c, o))
  local n, first, last = 0, nil, nil
  s:on("message", function()
    n = n + 1
    last = sts.now()
    if n == 1 then first = last end
    if n == opts.count then sts.stop() end
  end)
  sts.every(0.5, function() if last and sts.now() - last > 3 then sts.stop() end end)
  sts.run()
  local elapsed = (last or 0) - (first or 0)
  print(string.format("received %d in %.3f s: %.0f msg/s", n, elapsed, n > 1 and (n - 1) / elapsed or 0))
end

local function enc_send()
  local c = connect()
  local o = security(false)
  o.role, o.pub, o.sub, o.qos, o.retransmit = "initiator", ENC_UP, ENC_DOWN, 0, 0.1
  o.identity = sensor_identity(1)
  local s = assert(sts.handshake(c, o))
  sts.sleep(0.2) -- the responder is established too
  local payload = string.rep("x", tonumber(opts.size))
  sts.task(function()
    for i = 1, opts.count do
      assert(s:send(payload))
      if i % 500 == 0 then coroutine.yield() end
    end
    assert(c:flush(60), "messages still unsent after 60 s")
    sts.stop()
  end)
  sts.run()
end

-- --- comparing -----------------------------------------------------------------

-- With --data DIR, a table of a part's results as DIR/NAME (bench/plot's input),
-- its first comment line saying what was measured when.
local function write_data(name, header, rows, what)
  if not opts.data then return end
  common.write_table(opts.data .. "/" .. name, header, rows,
    string.format("bench/session.lua, sts-lua %s, %s: %s", sts.version, common.provenance(), what))
  print("(written to " .. opts.data .. "/" .. name .. ")")
end

-- Part 2: per size, --runs rounds of plain MQTT (bench/pubsub.lua's roles,
-- `c:publish(topic, payload)`) and of a session per suite, alternating, so
-- that what else the shared machine runs falls on all of them alike. msg/s
-- depends on how the three busy processes share the cores; the CPU per
-- message they spend together does not, and makes the ratio.
local function throughput(test, broker, role)
  local backend, build = common.aead_backend(test.sts_lua())
  local suites = common.list(opts.suite or SUITES)
  print(string.format("\n2. Throughput, QoS 0, %d messages a round, sender and receiver in separate processes; "
    .. "median of %d rounds, alternating plain and %s; AEAD backend %s (%s)", opts.count, opts.runs,
    table.concat(suites, ", "), backend, build))
  print("CPU per received message, µs; ratio: plain's CPU per message over the session's (medians), and the "
    .. "session's msg/s over plain's")
  print(string.format("%7s %-24s %9s %8s %8s %8s %8s %9s %11s %9s %s", "size", "", "msg/s", "sender", "broker",
    "receiver", "total", "ratio CPU", "ratio msg/s", "received", "CPU ratio of each round pair, min-max"))
  local pid = broker.process.pid
  local data = {}
  for _, size in ipairs(common.list(opts.size)) do
    local args = string.format("--count %d --size %d", opts.count, size)
    local pubsub = function(r)
      return string.format("%s bench/pubsub.lua --role %s -p %d --qos 0 %s", test.quote(test.sts_lua()), r, broker.port,
        args)
    end
    local rounds = { plain = {} }
    for _, suite in ipairs(suites) do rounds[suite] = {} end
    for k = 1, opts.runs do
      rounds.plain[k] = assert(common.throughput_round(test, pid, pubsub("recv"), pubsub("send")))
      for _, suite in ipairs(suites) do
        rounds[suite][k] = assert(common.throughput_round(test, pid, role("enc-recv", args .. " --pattern IK"),
          role("enc-send", args .. " --pattern IK --suite " .. suite)))
      end
    end
    local plain = common.throughput_summary(rounds.plain)
    -- pair_ratios: the CPU ratios of the round pairs run one after the other.
    local function row(label, mode, r, pair_ratios)
      local ratio, low, high = plain.total / r.total, 1.0, 1.0
      if pair_ratios then low, high = common.percentile(pair_ratios, 0), common.percentile(pair_ratios, 1) end
      print(string.format("%5d B %-24s %9.0f %8.2f %8.2f %8.2f %8.2f %9s %11s %9d %s", size, label, r.rate, r.sender,
        r.broker, r.receiver, r.total, pair_ratios and string.format("%.3f", ratio) or "",
        pair_ratios and string.format("%.3f", r.rate / plain.rate) or "", r.fewest,
        pair_ratios and string.format("%.3f-%.3f", low, high) or ""))
      data[#data + 1] = { size, mode, r.rate, r.total, r.sender, r.broker, r.receiver, ratio, low, high,
                          r.rate / plain.rate, r.fewest }
    end
    row("plain MQTT", "plain", plain)
    for _, suite in ipairs(suites) do
      local pairs_ratio = {}
      for k, r in ipairs(rounds[suite]) do pairs_ratio[k] = common.round_cpu(rounds.plain[k]) / common.round_cpu(r) end
      row(suite, suite, common.throughput_summary(rounds[suite]), pairs_ratio)
    end
  end
  write_data("throughput.dat", { "size_bytes", "mode", "msg_per_s", "cpu_us_per_msg_total", "sender", "broker",
    "receiver", "ratio", "ratio_min", "ratio_max", "msg_per_s_ratio", "received_min" }, data,
    string.format("QoS 0, %d messages a round, median of %d rounds; CPU in µs per received message; ratio: plain's "
      .. "CPU over the mode's (min, max: of the round pairs); AEAD backend %s", opts.count, opts.runs, backend))
end

local function compare()
  local test = require "sts.test"
  local keyfiles = require "sts.keyfiles"
  local broker = test.broker()
  local keys = test.tmpdir()
  local me = test.quote(test.sts_lua()) .. " bench/session.lua"
  local function role(name, extra)
    return string.format("%s --role %s -p %d --keys %s %s", me, name, broker.port, test.quote(keys), extra or "")
  end
  local function field(text, name)
    return tonumber(text:match(name .. " ([%d.]+)"))
  end
  local function wanted(part) return opts.part == nil or opts.part == part end

  -- Identities: a gateway and as many sensors as the largest part run needs.
  assert(keyfiles.write_pair(keys .. "/gateway"))
  local trust = {}
  local sensors = math.max(wanted(1) and opts.handshakes or 1, wanted(4) and opts.sessions or 1)
  for i = 1, sensors do
    local key <close>, public = sts.keygen()
    assert(key:save(keys .. "/sensor-" .. i .. ".key"))
    trust[i] = public:match("\n(%x+)") .. " sensor-" .. i
  end
  test.write_file(keys .. "/sensors.trust", table.concat(trust, "\n") .. "\n")

  print(string.format("sts-lua %s, mosquitto on 127.0.0.1:%d", sts.version, broker.port))
  if wanted(1) then
    -- A raw subscriber counting payload bytes per topic and frame type.
    local wire = { by_type = {} }
    local sniffer = assert(sts.connect(broker:options()))
    assert(sniffer:subscribe("hs/#", function(_, payload)
      local t = payload:byte(2)
      local w = wire.by_type[t] or { frames = 0, bytes = 0 }
      w.frames, w.bytes = w.frames + 1, w.bytes + #payload
      wire.by_type[t] = w
    end, { qos = 0 }))

    print(string.format("\n1. Handshakes (%d per pattern, one at a time, each on its own topics; listener responder)", opts.handshakes))
    print(string.format("%-4s %10s %10s %14s %14s %12s %12s", "", "median ms", "p95 ms", "init CPU ms", "resp CPU ms", "wire bytes", "(+ confirm)"))
    local data = {}
    for _, pattern in ipairs({ "XX", "IK", "NN" }) do
      wire.by_type = {}
      local listener = test.spawn(role("listen", string.format("--count %d --pattern %s", opts.handshakes, pattern)))
      assert(listener:wait_for("ready"), listener:output())
      local initiator = test.spawn(role("initiate", string.format("--count %d --pattern %s", opts.handshakes, pattern)))
      assert(initiator:wait(120), "initiator did not finish")
      assert(listener:wait(10), "listener did not finish: " .. listener:output())
      local i_out, l_out = initiator:output(), listener:output()
      assert(field(i_out, "handshakes") == opts.handshakes, i_out)
      sts.sleep(0.2)
      local hs_bytes = 0
      for t = 1, 3 do hs_bytes = hs_bytes + (wire.by_type[t] and wire.by_type[t].bytes or 0) end
      local enc = wire.by_type[5] or { bytes = 0, frames = 0 }
      local row = { pattern, 1000 * field(i_out, "latency_median"), 1000 * field(i_out, "latency_p95"),
                    1000 * field(i_out, "cpu_median"), 1000 * field(l_out, "cpu") / opts.handshakes,
                    hs_bytes / opts.handshakes, enc.bytes / opts.handshakes }
      print(string.format("%-4s %10.2f %10.2f %14.3f %14.3f %12.1f %12.1f", table.unpack(row)))
      data[#data + 1] = row
      initiator:kill()
      listener:kill()
    end
    sniffer:disconnect()
    write_data("handshakes.dat", { "pattern", "latency_ms_median", "latency_ms_p95", "initiator_cpu_ms",
      "responder_cpu_ms", "bytes", "confirm_bytes" }, data, string.format("%d handshakes per pattern, one at a time, "
      .. "listener responder; initiator CPU: median, responder CPU: mean; bytes: handshake frames per handshake",
      opts.handshakes))
  end

  if wanted(2) then throughput(test, broker, role) end

  if wanted(3) then
    print("\n3. Bytes on the wire (a raw subscriber on the session's topics)")
    local a, b = assert(sts.connect(broker:options())), assert(sts.connect(broker:options()))
    local bytes = { frames = 0, payload = 0 }
    local counter = assert(sts.connect(broker:options()))
    assert(counter:subscribe("ovh/#", function(_, payload)
      if payload:byte(2) == 5 then bytes.frames, bytes.payload = bytes.frames + 1, bytes.payload + #payload end
    end, { qos = 1 }))
    local responder = sts.future()
    sts.task(function()
      responder:set(sts.handshake(b, { role = "responder", pub = "ovh/down", sub = "ovh/up",
        identity = keys .. "/gateway.key", trust = keys .. "/sensors.trust" }))
    end)
    local s = assert(sts.handshake(a, { role = "initiator", pub = "ovh/up", sub = "ovh/down",
      identity = keys .. "/sensor-1.key", peer = keys .. "/gateway.pub" }))
    local r = assert(responder:wait(5))
    local got = 0
    r:on("message", function() got = got + 1 end)
    sts.sleep(0.2)
    bytes.frames, bytes.payload = 0, 0
    local plaintext = 0
    for _, size in ipairs({ 0, 1, 64, 1024 }) do
      for _ = 1, 250 do
        assert(s:send(string.rep("y", size)))
        plaintext = plaintext + size
      end
    end
    test.wait_until(function() return bytes.frames >= 1000 end, 10)
    print(string.format("ENC: %d frames, %d payload bytes for %d plaintext bytes: %.2f bytes of overhead per message",
      bytes.frames, bytes.payload, plaintext, (bytes.payload - plaintext) / bytes.frames))
    print("handshakes: see the wire bytes column of part 1 (INITREQ + INITACK [+ AUTHREQ]; the confirmation ENC apart)")
    s:close()
    a:flush(2)
    for _, c in ipairs({ a, b, counter }) do c:disconnect() end
  end

  if wanted(4) then
    print(string.format("\n4. Memory: a listener holding %d established sessions (IK, %d handshakes at a time)", opts.sessions, 50))
    local listener = test.spawn(role("listen", string.format("--count %d --pattern IK", opts.sessions)))
    assert(listener:wait_for("ready"), listener:output())
    local initiator = test.spawn(role("initiate", string.format("--count %d --pattern IK --parallel 50 --hold",
      opts.sessions)))
    assert(listener:wait(300), "listener did not finish: " .. listener:output())
    local out = listener:output()
    local n, memory = field(out, "sessions"), field(out, "memory")
    local before, after = field(out, "rss_before"), field(out, "rss_after")
    print(string.format("sessions %d; session:stats().memory: %d bytes in all, %.0f per session; listener CPU %.2f ms per handshake",
      n, memory, memory / n, 1000 * field(out, "cpu") / n))
    print(string.format("listener RSS %d kB before, %d kB after: %.2f kB per session (the Lua objects, tables and",
      before, after, (after - before) / n))
    print("subscription bookkeeping included)")
    print(initiator:output():match("initiator:[^\n]*"))
    initiator:kill()
  end

  broker:stop()
  test.cleanup()
end

local roles = { listen = listen, initiate = initiate, ["enc-recv"] = enc_recv, ["enc-send"] = enc_send }
if opts.role then
  assert(roles[opts.role], "unknown role " .. opts.role)()
else
  compare()
end
