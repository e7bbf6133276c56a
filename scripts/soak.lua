-- The soak behind scripts/soak: a sender and a receiver process exchange
-- numbered messages through a mosquitto of its own (persistence on, loopback,
-- a temporary directory), which is stopped and started again twice while
-- they do; then the messages lost and duplicated at the application level,
-- and the memory (RSS) of both processes and the broker at start, at each
-- restart and at the end.
--   sts-lua scripts/soak.lua [--count N] [--only session|qos1|qos2]
-- Modes: "session" (a pairwise session at QoS 1), "qos1" (plain QoS 1),
-- "qos2" (plain QoS 2), each with clean_session = false on both sides.
local sts = require "sts"
local test = require "sts.test"

local RECONNECT = { min_delay = 0.1, max_delay = 0.5 }

local function option(name, default)
  for i = 1, #arg - 1 do if arg[i] == "--" .. name then return arg[i + 1] end end
  return default
end

local function rss_kib(pid)
  local status = pid and test.read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(status:match("VmRSS:%s*(%d+)")) or 0
end

local function own_pid()
  return tonumber(test.read_file("/proc/self/stat"):match("^(%d+)"))
end

-- --- the two peers (this script again, with --role) ----------------------------

local function connect(port, id)
  return assert(sts.connect{ host = "127.0.0.1", port = port, client_id = id, clean_session = false,
                             reconnect = RECONNECT, timeout = 5 })
end

-- The receiver: counts distinct and repeated numbers; prints progress, and
-- its result once the sender is done (the file `done` exists) and nothing
-- came for two seconds.
local function receiver(mode, port, dir)
  local client = connect(port, "soak-rx-" .. mode)
  -- A bit per number, so that the tally does not weigh in the receiver's RSS.
  local seen, count, dups, last = {}, 0, 0, sts.now()
  local function is_seen(n) return (seen[n >> 6] or 0) & (1 << (n & 63)) ~= 0 end
  local function take(payload)
    local n = tonumber(payload)
    if is_seen(n) then
      dups = dups + 1
    else
      seen[n >> 6] = (seen[n >> 6] or 0) | (1 << (n & 63))
      count = count + 1
    end
    last = sts.now()
  end
  if mode == "session" then
    local key = assert(sts.load_key(dir .. "/rx.key"))
    sts.task(function()
      local s = assert(sts.handshake(client, { role = "responder", pub = "soak/down", sub = "soak/up",
                                               identity = key, peer = dir .. "/tx.pub", qos = 1 }))
      s:on("message", take)
    end)
  else
    assert(client:subscribe("soak/" .. mode, function(_, payload) take(payload) end, { qos = mode == "qos2" and 2 or 1 }))
  end
  print("pid " .. own_pid())
  print("ready")
  io.stdout:flush()
  while true do
    sts.sleep(0.5)
    print("progress " .. count)
    io.stdout:flush()
    if test.read_file(dir .. "/done") and sts.now() - last > 2 then break end
  end
  local total = tonumber(test.read_file(dir .. "/done"))
  local lost = 0
  for n = 1, total do if not is_seen(n) then lost = lost + 1 end end
  print(string.format("result received=%d lost=%d duplicated=%d", count, lost, dups))
  io.stdout:flush()
  sts.sleep(60) -- the coordinator reads our RSS, then ends us
  client:disconnect()
end

-- The sender: numbers 1..count, in batches, then flushes. It keeps at most
-- WINDOW messages unacknowledged, so the memory measured is the steady
-- state's, not a backlog's that grows with the count.
local WINDOW = 20000

local function sender(mode, port, dir, count)
  local client = connect(port, "soak-tx-" .. mode)
  local send
  if mode == "session" then
    local key = assert(sts.load_key(dir .. "/tx.key"))
    local s = assert(sts.handshake(client, { role = "initiator", pub = "soak/up", sub = "soak/down",
                                             identity = key, peer = dir .. "/rx.pub", qos = 1, timeout = 30 }))
    send = function(n) return s:send(tostring(n)) end
  else
    local qos = mode == "qos2" and 2 or 1
    send = function(n) return client:publish("soak/" .. mode, tostring(n), { qos = qos }) end
  end
  print("pid " .. own_pid())
  print("ready")
  io.stdout:flush()
  while not test.read_file(dir .. "/go") do sts.sleep(0.05) end
  for n = 1, count do
    assert(send(n))
    if n % 500 == 0 then
      repeat sts.sleep(0.005) until client:stats().unacked < WINDOW
      if n % 10000 == 0 then print("sent " .. n); io.stdout:flush() end
    end
  end
  while not client:flush(30) do print("flushing, unacked " .. client:stats().unacked); io.stdout:flush() end
  print("done")
  io.stdout:flush()
  sts.sleep(60)
  client:disconnect()
end

-- --- the coordinator --------------------------------------------------------------

local function spawn_peer(role, mode, port, dir, count)
  return test.spawn_script(arg[0], "--role", role, "--mode", mode, "--port", tostring(port),
                           "--dir", dir, "--count", tostring(count))
end

local function pid_of(p)
  return tonumber(p:wait_for("pid (%d+)", 30))
end

local function soak(mode, count)
  local broker = test.broker()
  local dir = test.tmpdir()
  if mode == "session" then
    for _, name in ipairs({ "tx", "rx" }) do
      local key, public = sts.keygen()
      assert(key:save(dir .. "/" .. name .. ".key"))
      assert(sts.write_public_key(dir .. "/" .. name .. ".pub", public))
    end
  end
  local rx = spawn_peer("rx", mode, broker.port, dir, count)
  assert(rx:wait_for("ready", 30), rx:output())
  local tx = spawn_peer("tx", mode, broker.port, dir, count)
  assert(tx:wait_for("ready", 60), tx:output())
  local pids = { rx = pid_of(rx), tx = pid_of(tx) }
  local function broker_pid()
    local children = test.read_file("/proc/" .. broker.process.pid .. "/task/" .. broker.process.pid .. "/children")
    return tonumber(children and children:match("%d+")) or broker.process.pid
  end
  local rss = { tx = {}, rx = {}, broker = {} }
  local function sample()
    for name, pid in pairs{ tx = pids.tx, rx = pids.rx, broker = broker_pid() } do
      rss[name][#rss[name] + 1] = tostring(rss_kib(pid))
    end
  end
  sample()
  local started = sts.now()
  test.write_file(dir .. "/go", "")
  local function received()
    local last = 0
    for n in rx:output():gmatch("progress (%d+)") do last = tonumber(n) end
    return last
  end
  for k = 1, 2 do
    assert(test.wait_until(function() return received() >= count * k // 3 end, 600), "no progress: " .. rx:output())
    sample()
    broker:restart()
    io.stderr:write(string.format("soak %s: broker restarted at %d received\n", mode, received()))
  end
  assert(tx:wait_for("\ndone", 600), "sender did not finish: " .. tx:output())
  test.write_file(dir .. "/done", tostring(count))
  local result = rx:wait_for("result ([^\n]+)", 120)
  sample()
  local elapsed = sts.now() - started
  tx:kill()
  rx:kill()
  broker:stop()
  return string.format("%-8s %d messages, 2 broker restarts, %.1f s: %s; RSS KiB at start, 1st and 2nd restart, end: "
    .. "sender %s, receiver %s, broker %s", mode, count, elapsed, result or ("no result: " .. rx:output():sub(-300)),
    table.concat(rss.tx, "/"), table.concat(rss.rx, "/"), table.concat(rss.broker, "/"))
end

local role = option("role")
if role then
  local mode, port, dir = option("mode"), tonumber(option("port")), option("dir")
  local count = tonumber(option("count"))
  if role == "rx" then receiver(mode, port, dir) else sender(mode, port, dir, count) end
  os.exit(0)
end

local count = tonumber(option("count", "200000"))
local modes = option("only") and { option("only") } or { "session", "qos1", "qos2" }
local lines = {}
for _, mode in ipairs(modes) do
  lines[#lines + 1] = soak(mode, count)
  print(lines[#lines])
  io.stdout:flush()
end
test.cleanup()
