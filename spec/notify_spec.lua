-- systemd's readiness protocol, as a Type=notify unit sees it: a real
-- sts-lua process started with NOTIFY_SOCKET naming a real datagram socket
-- (spec/tools/notify_listen.c, bound at a path and in the abstract
-- namespace) says READY=1 when sts.run starts and STOPPING=1 when SIGTERM
-- begins the clean shutdown, from its own pid.
local sts = require "sts"
local test = require "sts.test"

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

  local function service_under(socket)
    local manager = spawn(test.quote(tool()) .. " " .. test.quote(socket))
    assert.truthy(manager:wait_for("listening\n"), manager:output())
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
    local lines = {}
    for l in manager:output():gmatch("notify%[%d+%]: ([^\n]*)") do lines[#lines + 1] = l end
    assert.same({ "STATUS=connected to the broker", "READY=1", "STOPPING=1" }, lines)
  end

  it("says READY=1 then STOPPING=1 to a socket at a path", function()
    service_under(dir .. "/notify.sock")
  end)

  it("says READY=1 then STOPPING=1 to a socket in the abstract namespace", function()
    service_under(string.format("@sts-notify-spec-%d", math.random(1 << 30)))
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
