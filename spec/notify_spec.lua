-- systemd's readiness protocol, as a Type=notify unit sees it: a real
-- sts-lua process started with NOTIFY_SOCKET naming a real datagram socket
-- (spec/tools/notify_listen.c, bound at a path and in the abstract
-- namespace) says READY=1 when sts.run starts and STOPPING=1 when SIGTERM
-- begins the clean shutdown, from its own pid; so does the key server, whose
-- SIGTERM handler saves its state first.
local sts = require "sts"
local test = require "sts.test"
local keyfiles = require "sts.keyfiles"

local function tool()
  local build = assert(os.getenv("STS_BUILD_DIR"), "STS_BUILD_DIR names the build tree")
  return build .. "/spec/notify-listen"
end

local SERVICE = [[
local sts = require "sts"
io.stdout:setvbuf("line")
local client = assert(sts.connect{ port = tonumber(arg[1]) })
print("status sent " .. tostring(sts.notify("STATUS=connected to the broker")))
local f = assert(io.open("/proc/self/stat"))
print("ready " .. f:read("n"))
f:close()
sts.run()
]]

describe("sd_notify", function()
  local broker, dir, script
  local spawned = {}

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
    script = dir .. "/service.lua"
    test.write_file(script, SERVICE)
  end)
  after_each(function()
    for _, p in ipairs(spawned) do p:kill("KILL") end
    spawned = {}
  end)
  teardown(function()
    broker:stop()
    test.cleanup()
  end)

  local function spawn(cmd)
    local p = test.spawn(cmd)
    spawned[#spawned + 1] = p
    return p
  end

  -- A service manager listening on socket.
  local function manager_at(socket)
    local manager = spawn(test.quote(tool()) .. " " .. test.quote(socket))
    assert.truthy(manager:wait_for("listening\n"), manager:output())
    return manager
  end

  -- What the manager heard, line by line, from any pid.
  local function heard(manager)
    local lines = {}
    for l in manager:output():gmatch("notify%[%d+%]: ([^\n]*)") do lines[#lines + 1] = l end
    return lines
  end

  local function service_under(socket)
    local manager = manager_at(socket)
    local service = spawn(string.format("NOTIFY_SOCKET=%s %s %s %d", test.quote(socket),
      test.quote(test.sts_lua()), test.quote(script), broker.port))
    local pid = service:wait_for("ready (%d+)\n")
    assert.truthy(pid, service:output())
    local ready = "notify%[" .. pid .. "%]: READY=1\n"
    assert.truthy(manager:wait_for(ready), manager:output())
    assert.matches("status sent true\n", service:output())
    assert.matches("notify%[" .. pid .. "%]: STATUS=connected to the broker\n" .. ready, manager:output())
    assert.truthy(os.execute("kill -TERM " .. pid))
    assert.truthy(manager:wait_for("notify%[" .. pid .. "%]: STOPPING=1\n"), manager:output())
    assert.equal(0, service:wait(15), service:output())
    -- READY once, STOPPING once, in that order, and nothing else.
    assert.same({ "STATUS=connected to the broker", "READY=1", "STOPPING=1" }, heard(manager))
  end

  it("says READY=1 then STOPPING=1 to a socket at a path", function()
    service_under(dir .. "/notify.sock")
  end)

  it("says READY=1 then STOPPING=1 to a socket in the abstract namespace", function()
    service_under(string.format("@sts-notify-spec-%d", math.random(1 << 30)))
  end)

  it("hears STOPPING=1 from the key server too, after it saved its state on SIGTERM", function()
    local socket = dir .. "/keyserver.sock"
    local manager = manager_at(socket)
    keyfiles.write_pair(dir .. "/ks")
    keyfiles.write_pair(dir .. "/member")
    test.write_file(dir .. "/ks.acl", test.read_file(dir .. "/member.pub"):match("\n(%x+)") .. " member room rw\n")
    local state = dir .. "/ks.state"
    local ks = spawn(string.format("NOTIFY_SOCKET=%s %s scripts/keyserver.lua --host 127.0.0.1 --port %d "
      .. "--identity %s --acl %s --state %s", test.quote(socket), test.quote(test.sts_lua()), broker.port,
      test.quote(dir .. "/ks.key"), test.quote(dir .. "/ks.acl"), test.quote(state)))
    assert.truthy(ks:wait_for("keyserver ready\n"), ks:output())
    local pid = manager:wait_for("notify%[(%d+)%]: READY=1\n")
    assert.truthy(pid, manager:output())
    os.remove(state) -- whatever it wrote so far: the shutdown must write it
    assert.truthy(os.execute("kill -TERM " .. pid))
    assert.truthy(manager:wait_for("notify%[" .. pid .. "%]: STOPPING=1\n"), manager:output() .. ks:output())
    assert.equal(0, ks:wait(15), ks:output())
    assert.matches("keyserver: TERM: saving and stopping", ks:output())
    assert.matches("sts.shutdown: shut down cleanly", ks:output())
    assert.equal("600", test.file_mode(state))
    assert.same({ "READY=1", "STOPPING=1" }, heard(manager))
  end)

  it("sends nothing without NOTIFY_SOCKET, and reports one it cannot use", function()
    local p = assert(io.popen(string.format("env -u NOTIFY_SOCKET %s -e %s 2>&1", test.quote(test.sts_lua()),
      test.quote('print(require("sts").notify("READY=1"))'))))
    assert.equal("false\n", p:read("a"))
    p:close()
    p = assert(io.popen(string.format("NOTIFY_SOCKET=%s %s -e %s 2>&1", test.quote(dir .. "/nobody-there"),
      test.quote(test.sts_lua()), test.quote('print(require("sts").notify("READY=1"))'))))
    assert.matches("^nil\tsd_notify: NOTIFY_SOCKET=.-/nobody%-there: ", p:read("a"))
    p:close()
  end)
end)
