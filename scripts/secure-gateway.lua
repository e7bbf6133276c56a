-- A gateway that serves any number of sensors, each over its own end-to-end
-- encrypted session (sensors it trusts only), and answers every reading.
--   sts-lua scripts/secure-gateway.lua --identity gateway.key --trust sensors.trust
--       [--host H] [-p PORT] [--count N]
local sts = require "sts"
local cli = require "sts.cli"

local opts = cli.parse(arg, {
  usage = "sts-lua scripts/secure-gateway.lua --identity KEY --trust FILE [--host H] [-p PORT] [--count N]",
  options = {
    identity = { "--identity" },
    trust = { "--trust" },
    host = { "--host", default = "localhost" },
    port = { "-p", "--port", number = true, default = 1883 },
    count = { "--count", number = true }, -- exit after this many readings
  },
})
if not opts.identity or not opts.trust then
  io.stderr:write("--identity and --trust are required (make keys with scripts/keygen.lua)\n")
  os.exit(2)
end

local client = assert(sts.connect{ host = opts.host, port = opts.port, client_id = "gateway" })
local readings = 0
local listener = assert(sts.listen(client, {
  sub = "plant/+/up", pub = "plant/+/down", identity = opts.identity, trust = opts.trust,
}, function(session)
  print("sensor on " .. session.topic .. " authenticated as " .. session.peer)
  session:on("message", function(text)
    readings = readings + 1
    print("reading: " .. text)
    session:send("ack " .. (text:match('"seq":(%d+)') or "?"))
    if opts.count and readings >= opts.count then sts.after(0.5, sts.stop) end
  end)
  session:on("close", function(reason) print("sensor on " .. session.topic .. " left: " .. reason) end)
end))
print("gateway listening on plant/+/up")
sts.run()
listener:close()
client:flush(2)
client:disconnect()
