-- Plain MQTT throughput through a local mosquitto: 64-byte messages at QoS 0
-- and 1, sender and receiver in separate sts-lua processes, next to the same
-- exchange between two C libmosquitto clients (bench/mosquitto_pair).
--   cmake --build build --target bench && build/sts-lua bench/pubsub.lua [--count N]
-- As one of the two roles it is started by itself:
--   sts-lua bench/pubsub.lua --role recv|send -p PORT --count N --qos Q
local sts = require "sts"
local cli = require "sts.cli"

local opts = cli.parse(arg, {
  usage = "sts-lua bench/pubsub.lua [--count N] [--role recv|send -p PORT --qos Q]",
  options = {
    role = { "--role" },
    port = { "-p", "--port", number = true },
    count = { "--count", number = true, default = 100000 },
    qos = { "--qos", number = true, default = 0 },
    size = { "--size", number = true, default = 64 },
  },
})
local TOPIC = "bench/pubsub"

local function receive()
  local c = assert(sts.connect{ host = "127.0.0.1", port = opts.port })
  local n, first, last = 0, nil, nil
  assert(c:subscribe(TOPIC, function()
    n = n + 1
    last = sts.now()
    if n == 1 then first = last end
    if n == opts.count then sts.stop() end
  end, { qos = opts.qos }))
  print("ready")
  -- Stop when all arrived, or 3 s after the last one (QoS 0 may lose some).
  sts.every(0.5, function() if last and sts.now() - last > 3 then sts.stop() end end)
  sts.run()
  local elapsed = (last or 0) - (first or 0)
  print(string.format("received %d in %.3f s: %.0f msg/s", n, elapsed, n > 1 and (n - 1) / elapsed or 0))
end

local function send()
  local c = assert(sts.connect{ host = "127.0.0.1", port = opts.port })
  local payload = string.rep("x", opts.size)
  sts.task(function()
    for i = 1, opts.count do
      assert(c:publish(TOPIC, payload, { qos = opts.qos }))
      if i % 500 == 0 then coroutine.yield() end -- let the loop write and read acks
    end
    assert(c:flush(60), "messages still unacknowledged after 60 s")
    sts.stop()
  end)
  sts.run()
end

local function compare()
  local test = require "sts.test"
  local broker = test.broker()
  local pair = (os.getenv("STS_BUILD_DIR") or "build") .. "/bench/mosquitto_pair"
  local function run(label, recv_cmd, send_cmd, ready)
    local receiver = test.spawn(recv_cmd)
    if ready then assert(receiver:wait_for("ready"), receiver:output()) else sts.sleep(0.5) end
    local sender = test.spawn(send_cmd)
    receiver:wait(120)
    sender:kill()
    local result = receiver:output():match("received[^\n]*") or ("failed: " .. receiver:output())
    print(string.format("%-28s %s", label, result))
    return tonumber(result:match("(%d+) msg/s")) or 0
  end
  print(string.format("%d messages of %d bytes through mosquitto on 127.0.0.1:%d", opts.count, opts.size, broker.port))
  for _, qos in ipairs({ 0, 1 }) do
    local args = string.format("-p %d --count %d --qos %d --size %d", broker.port, opts.count, qos, opts.size)
    local lua = function(role) return string.format("%s bench/pubsub.lua --role %s %s", test.quote(test.sts_lua()), role, args) end
    local c = function(role) return string.format("%s %s %d %d %d", test.quote(pair), role, broker.port, opts.count, qos) end
    local reference = run("C libmosquitto pair, QoS " .. qos, c("recv"), c("send"), false)
    local ours = run("sts-lua pair, QoS " .. qos, lua("recv"), lua("send"), true)
    if reference > 0 then print(string.format("%-28s %.0f%% of the C pair", "", 100 * ours / reference)) end
  end
  broker:stop()
  test.cleanup()
end

if opts.role == "recv" then receive()
elseif opts.role == "send" then send()
else compare() end
