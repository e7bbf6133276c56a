-- Publishes this machine's load average as JSON telemetry every few seconds.
--   sts-lua scripts/telemetry-publisher.lua [--host H] [-p PORT] [--topic T] [--interval S] [--count N]
local sts = require "sts"
local cli = require "sts.cli"

local opts = cli.parse(arg, {
  usage = "sts-lua scripts/telemetry-publisher.lua [--host H] [-p PORT] [--topic T] [--interval S] [--count N]",
  options = {
    host = { "--host", default = "localhost" },
    port = { "-p", "--port", number = true, default = 1883 },
    topic = { "--topic", default = "plant/sensor-7/telemetry" },
    interval = { "--interval", number = true, default = 2 },
    count = { "--count", number = true },  -- stop after this many readings
  },
})

local function loadavg()
  local f = assert(io.open("/proc/loadavg"))
  local one, five, fifteen = f:read("l"):match("^(%S+) (%S+) (%S+)")
  f:close()
  return tonumber(one), tonumber(five), tonumber(fifteen)
end

local client = assert(sts.connect{ host = opts.host, port = opts.port })
sts.log.info("publishing to", opts.topic, "on", opts.host .. ":" .. opts.port)

local sent = 0
local function publish()
  local one, five, fifteen = loadavg()
  local reading = string.format('{"seq":%d,"load1":%.2f,"load5":%.2f,"load15":%.2f}', sent + 1, one, five, fifteen)
  assert(client:publish(opts.topic, reading, { qos = 1 }))
  sent = sent + 1
  print("sent " .. reading)
  if opts.count and sent >= opts.count then sts.stop() end
end

publish()
sts.every(opts.interval, publish)
sts.run()
client:disconnect()
