-- Sealed one-way readings through a real mosquitto, with real processes:
-- scripts/sealed-gateway.lua, scripts/sealed-sensor.lua (a new process per
-- reading, as a sensor that sleeps between them), the shell's sendsealed,
-- and a raw MQTT client that captures and replays frames.
local sts = require "sts"
local test = require "sts.test"

local GATEWAY = "scripts/sealed-gateway.lua"
local SENSOR = "scripts/sealed-sensor.lua"

local function escape(text)
  return (text:gsub("%p", "%%%0"))
end

local function count(text, plain)
  local n, at = 0, 1
  while true do
    local s, e = text:find(plain, at, true)
    if not s then return n end
    n, at = n + 1, e + 1
  end
end

describe("sealed readings", function()
  local broker, dir, spy
  local procs = {}
  local frames = {} -- topic -> the payloads a raw subscriber saw, in order

  --- Makes dir/NAME.key and .pub; returns the public key's hex.
  local function keypair(name)
    return test.identity(dir, name).hex
  end

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
    keypair("gateway")
    local trust = { "# the sensors the gateway accepts" }
    for _, name in ipairs { "sensor-k", "sensor-x", "shell-7" } do
      trust[#trust + 1] = keypair(name) .. " " .. name
    end
    keypair("stranger") -- a key, but not in the trust file
    test.write_file(dir .. "/sensors.trust", table.concat(trust, "\n") .. "\n")
    spy = assert(sts.connect(broker:options()))
    assert(spy:subscribe("#", function(topic, payload)
      frames[topic] = frames[topic] or {}
      table.insert(frames[topic], payload)
    end, { qos = 1 }))
  end)
  teardown(function()
    for _, p in ipairs(procs) do p:kill() end
    spy:disconnect()
    broker:stop()
    test.cleanup()
  end)

  local function spawn(script, ...)
    local p = test.spawn_script(script, "--host", "127.0.0.1", "--port", tostring(broker.port), ...)
    procs[#procs + 1] = p
    return p
  end

  --- A gateway of the trust file on TAG/+/up, with extra options; ready.
  local function gateway(tag, ...)
    local p = spawn(GATEWAY, "--identity", dir .. "/gateway.key", "--trust", dir .. "/sensors.trust",
      "--sub", tag .. "/+/up", ...)
    p:expect("gateway ready\n")
    return p
  end

  --- Sends a signal to the script itself: a process spawned by test.spawn
  -- is a shell that runs it and then records its exit status.
  local function signal(p, name)
    local children = test.read_file(("/proc/%d/task/%d/children"):format(p.pid, p.pid)) or ""
    local pid = assert(children:match("%d+"), "the script has ended: " .. p:output())
    assert(os.execute(("kill -%s %s"):format(name, pid)))
  end

  --- Stops a gateway as an operator would (SIGTERM); it exits 0.
  local function stop(p)
    signal(p, "TERM")
    assert.equal(0, p:wait(10), p:output())
  end

  --- Starts one run of the sensor script as NAME (its key and its state
  -- file in dir), on TAG/NAME/up, with more arguments.
  local function sense(tag, name, ...)
    return spawn(SENSOR, "--identity", dir .. "/" .. name .. ".key", "--gateway", dir .. "/gateway.pub",
      "--state", dir .. "/" .. tag .. "-" .. name .. ".state", "--topic", tag .. "/" .. name .. "/up", ...)
  end

  --- Runs the sensor to its end, sending reading: it must exit 0 and say
  -- what it sent; returns the counter it printed.
  local function send(tag, name, reading, ...)
    local args = { ... }
    args[#args + 1] = reading
    local p = sense(tag, name, table.unpack(args))
    assert.equal(0, p:wait(20), p:output())
    local counter = p:output():match("sent (%d+) " .. escape(tag .. "/" .. name .. "/up: " .. reading) .. "\n")
    assert(counter, p:output())
    return tonumber(counter)
  end

  --- Waits for the gateway's line of a reading; returns its counter.
  local function received(gw, sender, tag, name, reading)
    return tonumber(gw:expect("\n" .. escape(sender) .. " (%d+) " .. escape(tag .. "/" .. name .. "/up: " .. reading)
      .. "\n"))
  end

  --- The gateway's stats line (SIGUSR1), the n-th one it prints.
  local function stats(gw, n)
    signal(gw, "USR1")
    assert(test.wait_until(function() return count(gw:output(), "stats: ") >= n end, 10), gw:output())
    local last
    for line in gw:output():gmatch("stats: [^\n]*") do last = line end
    return last
  end

  it("delivers K and X readings with the sender's name and rising counters across sensor runs", function()
    local gw = gateway("kx")
    local c1 = send("kx", "sensor-k", "first k", "--create")
    assert.equal(c1, received(gw, "sensor-k", "kx", "sensor-k", "first k"))
    -- A new process: the counter comes from the state file.
    local c2 = send("kx", "sensor-k", "second k")
    assert.equal(c2, received(gw, "sensor-k", "kx", "sensor-k", "second k"))
    assert.is_true(c2 > c1)
    local x1 = send("kx", "sensor-x", "first x", "--pattern", "X", "--create")
    assert.equal(x1, received(gw, "sensor-x", "kx", "sensor-x", "first x"))
    local x2 = send("kx", "sensor-x", "second x", "--pattern", "X")
    assert.equal(x2, received(gw, "sensor-x", "kx", "sensor-x", "second x"))
    assert.is_true(x2 > x1)
    -- The broker saw ciphertext only.
    for topic, list in pairs(frames) do
      if topic:match("^kx/") then
        for _, payload in ipairs(list) do assert.is_nil(payload:find(" k", 1, true) or payload:find(" x", 1, true)) end
      end
    end
    assert.matches("stats: received 4 rejected 0 ", stats(gw, 1))
    stop(gw)
  end)

  it("defaults to this machine's load average", function()
    local gw = gateway("load")
    local p = sense("load", "sensor-k", "--create")
    assert.equal(0, p:wait(20), p:output())
    gw:expect('\nsensor%-k %d+ load/sensor%-k/up: {"load1":[%d.]+,"load5":[%d.]+,"load15":[%d.]+}\n')
    stop(gw)
  end)

  it("refuses a replayed reading, and after a restart with --state still does", function()
    local state = dir .. "/replay-gateway.state"
    local gw = gateway("replay", "--state", state, "--create")
    send("replay", "sensor-k", "once only", "--create")
    received(gw, "sensor-k", "replay", "sensor-k", "once only")
    local topic = "replay/sensor-k/up"
    assert(test.wait_until(function() return frames[topic] and #frames[topic] == 1 end), "the spy saw no frame")
    local captured = frames[topic][1]

    -- The broker, or anyone who can publish there, sends the frame again.
    local function replay()
      local raw = assert(sts.connect(broker:options()))
      assert(raw:publish(topic, captured, { qos = 1 }))
      assert(raw:flush(5))
      raw:disconnect()
    end
    replay()
    -- A later reading arrives after the replay (one topic, in order): once it
    -- is printed, the replay has been handled.
    send("replay", "sensor-k", "after the replay")
    received(gw, "sensor-k", "replay", "sensor-k", "after the replay")
    assert.equal(1, count(gw:output(), "once only"))
    assert.matches("stats: received 2 rejected 1 %(%a+ 1%) senders 1 ", stats(gw, 1))
    stop(gw)

    -- Restarted on its state file: the counter of sensor-k is still known.
    gw = gateway("replay", "--state", state)
    replay()
    send("replay", "sensor-k", "after the restart")
    received(gw, "sensor-k", "replay", "sensor-k", "after the restart")
    assert.is_nil(gw:output():find("once only", 1, true))
    assert.matches("stats: received 1 rejected 1 %(%a+ 1%) ", stats(gw, 1))
    stop(gw)

    -- What --state is for: a gateway without it takes the replay.
    gw = gateway("replay")
    replay()
    received(gw, "sensor-k", "replay", "sensor-k", "once only")
    stop(gw)
  end)

  it("does not print a reading sealed by a key the trust file does not name", function()
    local gw = gateway("untrusted")
    for _, pattern in ipairs { "K", "X" } do
      send("untrusted", "stranger", "forged " .. pattern, "--pattern", pattern, "--create")
    end
    send("untrusted", "sensor-k", "genuine", "--create")
    received(gw, "sensor-k", "untrusted", "sensor-k", "genuine")
    assert.is_nil(gw:output():find("forged", 1, true))
    assert.matches("stats: received 1 rejected 2 ", stats(gw, 1))
    stop(gw)
  end)

  it("with --bind, takes a sensor's readings only on its own topic", function()
    local gw = gateway("bind", "--bind")
    local p = spawn(SENSOR, "--identity", dir .. "/sensor-k.key", "--gateway", dir .. "/gateway.pub",
      "--state", dir .. "/bind-k.state", "--create", "--topic", "bind/sensor-x/up", "posing as x")
    assert.equal(0, p:wait(20), p:output())
    send("bind", "sensor-k", "own topic", "--create")
    received(gw, "sensor-k", "bind", "sensor-k", "own topic")
    assert.is_nil(gw:output():find("posing as x", 1, true))
    assert.matches("stats: received 1 rejected 1 ", stats(gw, 1))
    stop(gw)
  end)

  it("takes anonymous (N) readings only from a gateway started with --anonymous", function()
    local strict = gateway("anon")
    local open = gateway("anon", "--anonymous")
    local p = spawn(SENSOR, "--pattern", "N", "--gateway", dir .. "/gateway.pub", "--state", dir .. "/anon.state",
      "--create", "--topic", "anon/somebody/up", "who knows")
    assert.equal(0, p:wait(20), p:output())
    open:expect("\nanonymous %d+ anon/somebody/up: who knows\n")
    send("anon", "sensor-k", "named", "--create")
    received(strict, "sensor-k", "anon", "sensor-k", "named")
    assert.is_nil(strict:output():find("who knows", 1, true))
    assert.matches("stats: received 1 rejected 1 ", stats(strict, 1))
    stop(strict)
    stop(open)
  end)

  it("reaches the gateway from the shell's sendsealed", function()
    local gw = gateway("shell")
    local cfg = dir .. "/sealed.conf"
    test.write_file(cfg, table.concat({ "# a sealed sender", "protocol = sealed", "url = 127.0.0.1",
      "port = " .. broker.port, "identity = " .. dir .. "/shell-7.key", "gateway = " .. dir .. "/gateway.pub",
      "state = " .. dir .. "/shell-7.state", "create = true", "pubtop = shell/shell-7/up" }, "\n") .. "\n")
    local sh = test.spawn_fed(test.quote(test.sts_lua()) .. " --shell", dir)
    procs[#procs + 1] = sh
    sh:send("start " .. cfg)
    sh:expect("ready to send sealed readings on 'shell/shell%-7/up'")
    sh:send("sendsealed hello, gateway")
    sh:send("sendsealed and again")
    local a = received(gw, "shell-7", "shell", "shell-7", "hello, gateway")
    local b = received(gw, "shell-7", "shell", "shell-7", "and again")
    assert.is_true(b > a)
    sh:send("status")
    sh:expect("counter " .. b .. ", pattern K")
    sh:close_input()
    assert.equal(0, sh:wait(10), sh:output())
    stop(gw)
  end)

  it("fails with a clear error and status 1 when the sensor's state file is missing", function()
    local state = dir .. "/never-made.state"
    local p = spawn(SENSOR, "--identity", dir .. "/sensor-k.key", "--gateway", dir .. "/gateway.pub",
      "--state", state, "--topic", "missing/sensor-k/up", "lost")
    assert.equal(1, p:wait(20), p:output())
    assert.matches("sealed%-sensor: [^\n]*" .. escape(state), p:output())
    assert.is_nil(test.read_file(state)) -- nor made
    -- The gateway's own state file likewise.
    local gw = spawn(GATEWAY, "--identity", dir .. "/gateway.key", "--trust", dir .. "/sensors.trust",
      "--state", dir .. "/never-made-gateway.state")
    assert.equal(1, gw:wait(20), gw:output())
    assert.matches("sealed%-gateway: [^\n]*never%-made%-gateway%.state", gw:output())
  end)
end)
