-- A sensor that sleeps between readings: it wakes, connects, sends ONE
-- sealed reading (encrypted to the gateway's key in one frame, no
-- handshake) and exits 0 once the broker has it. The state file keeps the
-- reading counter across runs, so the gateway can refuse replays.
--   sts-lua scripts/sealed-sensor.lua --identity sensor.key --gateway gateway.pub --state sensor.state
--       [--create] [--topic T] [--pattern K|X|N] [--host H] [-p PORT] [READING]
-- READING defaults to this machine's load average, as JSON. --create makes
-- the state file on the first run (without it a missing file is an error:
-- a lost file must not restart the counter unnoticed). Pattern N sends no
-- identity (an anonymous reading: the gateway needs its --anonymous).
-- Prints "sent <counter> <topic>: <reading>"; any failure exits 1.
local sts = require "sts"
local cli = require "sts.cli"

local usage = "sts-lua scripts/sealed-sensor.lua --identity KEY --gateway PUB --state FILE [--create] "
  .. "[--topic T] [--pattern K|X|N] [--suite SUITE] [--host H] [-p PORT] [READING]"
local opts, positional = cli.parse(arg, {
  usage = usage,
  options = {
    identity = { "--identity" },
    gateway = { "--gateway" },
    state = { "--state" },
    create = { "--create", flag = true },
    topic = { "--topic", default = "plant/sensor-7/up" },
    pattern = { "--pattern", default = "K" },
    suite = { "--suite" },
    host = { "--host", default = "localhost" },
    port = { "-p", "--port", number = true, default = 1883 },
  },
})

local function fail(text)
  io.stderr:write("sealed-sensor: ", text, "\n")
  os.exit(1)
end

if #positional > 1 then
  io.stderr:write("at most one READING, got ", #positional, "\nusage: ", usage, "\n")
  os.exit(2)
end
if not ({ K = true, X = true, N = true })[opts.pattern] then
  io.stderr:write("--pattern is K, X or N, got '", opts.pattern, "'\nusage: ", usage, "\n")
  os.exit(2)
end
if not opts.gateway or not opts.state or (opts.pattern ~= "N") ~= (opts.identity ~= nil) then
  io.stderr:write("--gateway and --state are required, and --identity but with --pattern N (anonymous) "
    .. "(make keys with scripts/keygen.lua)\nusage: ", usage, "\n")
  os.exit(2)
end

local function loadavg()
  local f = assert(io.open("/proc/loadavg"))
  local one, five, fifteen = f:read("l"):match("^(%S+) (%S+) (%S+)")
  f:close()
  return string.format('{"load1":%.2f,"load5":%.2f,"load15":%.2f}', tonumber(one), tonumber(five), tonumber(fifteen))
end

-- The state file first: a sensor that cannot count must not connect at all.
local made, sealer, err = pcall(sts.sealer, { identity = opts.identity, peer = opts.gateway, pattern = opts.pattern,
                                              suite = opts.suite, state = opts.state, create = opts.create })
if not made then fail(sealer) end -- a bad option value
if not sealer then fail(err) end

local reading = positional[1] or loadavg()
local frame, serr = sealer:seal(reading, opts.topic)
if not frame then fail(serr) end
local counter = sealer.counter
sealer:close()

local client, cerr = sts.connect { host = opts.host, port = opts.port }
if not client then fail(cerr) end
local ok, perr = client:publish(opts.topic, frame, { qos = 1 })
if not ok then fail(perr) end
-- The broker acknowledges the reading (QoS 1) before we go back to sleep;
-- exiting earlier could lose it with the socket.
local flushed, ferr = client:flush(10)
if not flushed then fail("the reading was not acknowledged: " .. ferr) end
client:disconnect()
print(string.format("sent %d %s: %s", counter, opts.topic, reading))
