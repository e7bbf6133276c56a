-- Prints the telemetry published under a topic filter.
--   sts-lua scripts/telemetry-subscriber.lua [--host H] [-p PORT] [--filter F] [--count N]
local sts = require "sts"
local cli = require "sts.cli"

local opts = cli.parse(arg, {
  usage = "sts-lua scripts/telemetry-subscriber.lua [--host H] [-p PORT] [--filter F] [--count N]",
  options = {
    host = { "--host", default = "localhost" },
    port = { "-p", "--port", number = true, default = 1883 },
    filter = { "--filter", default = "plant/+/telemetry" },
    count = { "--count", number = true },  -- exit after this many messages
  },
})

local client = assert(sts.connect{ host = opts.host, port = opts.port })
local received = 0
assert(client:subscribe(opts.filter, function(topic, payload)
  received = received + 1
  print(string.format("received %s %s", topic, payload))
  if opts.count and received >= opts.count then sts.stop() end
end, { qos = 1 }))
print("subscribed to " .. opts.filter)
sts.run()
client:disconnect()
