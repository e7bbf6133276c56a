-- Plain MQTT throughput through a local mosquitto, sender and receiver in
-- separate sts-lua processes, next to the same exchange between two C
-- libmosquitto clients (bench/mosquitto_pair, 64-byte messages only): msg/s
-- and the CPU per message of sender, broker and receiver (/proc), median of
-- --runs rounds alternating the two pairs.
--   cmake --build build --target bench
--   STS_BUILD_DIR=build build/sts-lua bench/pubsub.lua [--count M] [--runs N] [--qos 0|1] [--size S,...]
-- As one of the two roles it is started by itself:
--   sts-lua bench/pubsub.lua --role recv|send -p PORT --count N --qos Q --size S
local sts = require "sts"
local cli = require "sts.cli"

local opts = cli.parse(arg, {
  usage = "sts-lua bench/pubsub.lua [--count M] [--runs N] [--qos 0|1] [--size S,...] [--role recv|send -p PORT]",
  options = {
    role = { "--role" },
    port = { "-p", "--port", number = true },
    count = { "--count", number = true, default = 200000 },
    runs = { "--runs", number = true, default = 7 },
    qos = { "--qos", number = true },
    size = { "--size", default = "64" },
  },
})
local TOPIC = "bench/pubsub"
local qos = opts.qos or 0

local function receive()
  local c = assert(sts.connect{ host = "127.0.0.1", port = opts.port })
  local n, first, last = 0, nil, nil
  assert(c:subscribe(TOPIC, function()
    n = n + 1
    last = sts.now()
    if n == 1 then first = last end
    if n == opts.count then sts.stop() end
  end, { qos = qos }))
  print("ready")
  -- Stop when all arrived, or 3 s after the last one (QoS 0 may lose some).
  sts.every(0.5, function() if last and sts.now() - last > 3 then sts.stop() end end)
  sts.run()
  local elapsed = (last or 0) - (first or 0)
  print(string.format("received %d in %.3f s: %.0f msg/s", n, elapsed, n > 1 and (n - 1) / elapsed or 0))
end

-- Publishes as a user would: `c:publish(topic, payload)` at QoS 0, the
-- session sender's s:send(payload) being its counterpart; at QoS 1 one
-- options table made before the loop.
local function send()
  local c = assert(sts.connect{ host = "127.0.0.1", port = opts.port })
  local payload = string.rep("x", tonumber(opts.size))
  local options = qos > 0 and { qos = qos } or nil
  sts.task(function()
    for i = 1, opts.count do
      assert(c:publish(TOPIC, payload, options))
      if i % 500 == 0 then coroutine.yield() end -- let the loop write and read acks
    end
    assert(c:flush(60), "messages still unacknowledged after 60 s")
    sts.stop()
  end)
  sts.run()
end

local function compare()
  local test = require "sts.test"
  local common = dofile((arg[0]:match("^(.*)/") or ".") .. "/common.lua")
  local broker = test.broker()
  local backend, build = common.aead_backend(test.sts_lua())
  local pair = build .. "/bench/mosquitto_pair"
  local have_pair = io.open(pair) ~= nil
  print(string.format("%d messages a round through mosquitto on 127.0.0.1:%d; median of %d rounds, the pairs alternating; "
    .. "build %s (AEAD backend %s)", opts.count, broker.port, opts.runs, build, backend))
  if not have_pair then print("(no " .. pair .. ": cmake --build " .. build .. " --target bench for the C pair)") end
  print("CPU per received message, µs, of each process and of the three; ratio: the C pair's CPU over sts-lua's")
  print(string.format("%-5s %7s %-16s %9s %8s %8s %8s %8s %7s %9s", "QoS", "size", "pair", "msg/s", "sender", "broker",
    "receiver", "total", "ratio", "received"))
  for _, q in ipairs(opts.qos and { opts.qos } or { 0, 1 }) do
    for _, size in ipairs(common.list(opts.size)) do
      local args = string.format("-p %d --count %d --qos %d --size %d", broker.port, opts.count, q, size)
      local lua = function(role) return string.format("%s bench/pubsub.lua --role %s %s", test.quote(test.sts_lua()), role, args) end
      local c = function(role) return string.format("%s %s %d %d %d", test.quote(pair), role, broker.port, opts.count, q) end
      local with_c = have_pair and size == 64
      local rounds = { c = {}, lua = {} }
      for _ = 1, opts.runs do
        if with_c then
          local r, out = common.throughput_round(test, broker.process.pid, c("recv"), c("send"), false)
          if r then rounds.c[#rounds.c + 1] = r else io.stderr:write("C pair round lost: ", out, "\n") end
        end
        rounds.lua[#rounds.lua + 1] = assert(common.throughput_round(test, broker.process.pid, lua("recv"), lua("send")))
      end
      local function row(label, s, ratio)
        print(string.format("%-5d %5d B %-16s %9.0f %8.2f %8.2f %8.2f %8.2f %7s %9d", q, size, label, s.rate, s.sender,
          s.broker, s.receiver, s.total, ratio, s.fewest))
      end
      local ours = common.throughput_summary(rounds.lua)
      if #rounds.c > 0 then
        local ref = common.throughput_summary(rounds.c)
        row("C libmosquitto", ref, "")
        row("sts-lua", ours, string.format("%.2f", ref.total / ours.total))
        print(string.format("%-5s %7s %-16s %8.0f%%", "", "", "", 100 * ours.rate / ref.rate))
      else
        row("sts-lua", ours, "")
      end
    end
  end
  broker:stop()
  test.cleanup()
end

if opts.role == "recv" then receive()
elseif opts.role == "send" then send()
else compare() end
