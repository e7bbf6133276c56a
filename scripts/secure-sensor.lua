-- A sensor that sends its load average to a gateway over an end-to-end
-- encrypted session: the broker only ever sees ciphertext.
--   sts-lua scripts/secure-sensor.lua --identity sensor.key --peer gateway.pub
--       [--id sensor-7] [--host H] [-p PORT] [--interval S] [--count N]
local sts = require "sts"
local cli = require "sts.cli"

local opts = cli.parse(arg, {
  usage = "sts-lua scripts/secure-sensor.lua --identity KEY --peer PUB [--id ID] [--host H] [-p PORT] [--interval S] [--count N]",
  options = {
    identity = { "--identity" },
    peer = { "--peer" },
    id = { "--id", default = "sensor-7" },
    host = { "--host", default = "localhost" },
    port = { "-p", "--port", number = true, default = 1883 },
    interval = { "--interval", number = true, default = 2 },
    count = { "--count", number = true },
  },
})
if not opts.identity or not opts.peer then
  io.stderr:write("--identity and --peer are required (make keys with scripts/keygen.lua)\n")
  os.exit(2)
end

local client = assert(sts.connect{ host = opts.host, port = opts.port, client_id = opts.id })
local session = assert(sts.handshake(client, {
  role = "initiator", identity = opts.identity, peer = opts.peer,
  pub = "plant/" .. opts.id .. "/up", sub = "plant/" .. opts.id .. "/down",
}))
print("session with gateway " .. session.peer)
session:on("message", function(text) print("gateway says: " .. text) end)
session:on("close", function(reason)
  print("session closed: " .. reason)
  sts.stop()
end)

local function loadavg()
  local f = assert(io.open("/proc/loadavg"))
  local one = f:read("l"):match("^(%S+)")
  f:close()
  return tonumber(one)
end

local seq = 0
local function report()
  seq = seq + 1
  local reading = string.format('{"sensor":"%s","seq":%d,"load1":%.2f}', opts.id, seq, loadavg())
  assert(session:send(reading))
  print("sent " .. reading)
  if opts.count and seq >= opts.count then
    sts.after(1, function() sts.stop() end) -- let the last acknowledgement arrive
  end
end
report()
local timer = sts.every(opts.interval, function()
  if not opts.count or seq < opts.count then report() end
end)
sts.run()
timer:cancel()
session:close("sensor done")
client:flush(2)
client:disconnect()
