-- The gateway of sensors that send sealed one-way readings (see
-- scripts/sealed-sensor.lua): opens the readings of the sensors its trust
-- file names, refuses replays (a counter not above the sender's last), and
-- prints one line per reading:
--   <sender> <counter> <topic>: <reading>
--   sts-lua scripts/sealed-gateway.lua --identity gateway.key --trust sensors.trust
--       [--sub FILTER] [--bind] [--state FILE [--create]] [--anonymous] [--host H] [-p PORT]
-- --bind: a sensor's readings count only on a topic naming it (the trust
-- file's name as the filter's + level). --state keeps every sender's last
-- counter across restarts (--create makes the file on the first run);
-- without it a restarted gateway accepts a replay of what it saw before.
-- --anonymous also accepts pattern N readings (sender "anonymous"; nothing
-- says who sent them).
-- Prints "gateway ready" once subscribed; logs go to stderr. SIGUSR1 prints
-- a "stats:" line; SIGTERM and SIGINT save the state and exit 0.
local sts = require "sts"
local cli = require "sts.cli"

local opts = cli.parse(arg, {
  usage = "sts-lua scripts/sealed-gateway.lua --identity KEY --trust FILE [--sub FILTER] [--bind] "
    .. "[--state FILE [--create]] [--anonymous] [--host H] [-p PORT]",
  positional = 0,
  options = {
    identity = { "--identity" },
    trust = { "--trust" },
    sub = { "--sub", default = "plant/+/up" },
    bind = { "--bind", flag = true },
    state = { "--state" },
    create = { "--create", flag = true },
    anonymous = { "--anonymous", flag = true },
    host = { "--host", default = "localhost" },
    port = { "-p", "--port", number = true, default = 1883 },
  },
})

local function fail(text)
  io.stderr:write("sealed-gateway: ", text, "\n")
  os.exit(1)
end

if not opts.identity or not opts.trust then
  io.stderr:write("--identity and --trust are required (make keys with scripts/keygen.lua)\n")
  os.exit(2)
end

--- Text from the network, one line: control characters as \xNN.
local function printable(text)
  return (text:gsub("[%c\127]", function(c) return ("\\x%02x"):format(c:byte()) end))
end

local client, err = sts.connect { host = opts.host, port = opts.port }
if not client then fail(err) end

local made, listener, lerr = pcall(sts.listen_sealed, client, {
  sub = opts.sub, identity = opts.identity, trust = opts.trust, bind = opts.bind and "name" or nil,
  state = opts.state, create = opts.create, anonymous = opts.anonymous,
}, function(reading, info)
  io.stdout:write(string.format("%s %d %s: %s\n", info.sender or "anonymous", info.counter,
    printable(info.topic), printable(reading)))
  io.stdout:flush()
end)
if not made then fail(listener) end -- a bad option value
if not listener then fail(lerr) end

local function stats_line()
  local st = listener:stats()
  local reasons = {}
  for reason, n in pairs(st.rejected) do
    if n > 0 then reasons[#reasons + 1] = ("%s %d"):format(reason, n) end
  end
  table.sort(reasons)
  return ("stats: received %d rejected %d (%s) senders %d state_failures %d"):format(st.received,
    st.rejected_total, table.concat(reasons, ", "), st.senders, st.state_failures)
end

local function stop(signal)
  sts.log.info("sealed-gateway: " .. signal .. ": stopping")
  io.stderr:write("sealed-gateway: ", stats_line(), "\n")
  listener:close()
  client:disconnect()
  sts.stop()
end

sts.signal("TERM", stop)
sts.signal("INT", stop)
sts.signal("USR1", function()
  io.stdout:write(stats_line(), "\n")
  io.stdout:flush()
end)

io.stdout:write("gateway ready\n")
io.stdout:flush()
sts.run()
