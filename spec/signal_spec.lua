-- Signals on the event loop: sts.signal(name, fn), in spawned sts-lua
-- processes sent real signals with kill(1), and in this one.
local sts = require "sts"
local test = require "sts.test"

-- Every script prints "ready PID" (its own pid, not the shell's that
-- test.spawn wraps it in) once its handlers are in place, and flushes every line.
local PRELUDE = [[
local sts = require "sts"
io.stdout:setvbuf("line")
local function ready()
  local f = assert(io.open("/proc/self/stat"))
  print("ready " .. f:read("n"))
  f:close()
end
]]

local function own_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

local spawned = {}

local function start(body)
  local path = test.tmpdir() .. "/signals.lua"
  test.write_file(path, PRELUDE .. body)
  local p = test.spawn_script(path)
  spawned[#spawned + 1] = p
  p.sts_pid = tonumber(p:wait_for("ready (%d+)\n"))
  assert.truthy(p.sts_pid, p:output())
  return p
end

local function send(p, signal)
  assert.truthy(os.execute(string.format("kill -%s %d", signal, p.sts_pid)))
end

local function expect(p, pattern)
  assert.truthy(p:wait_for(pattern), "no " .. pattern .. " in:\n" .. p:output())
end

describe("sts.signal", function()
  after_each(function()
    for _, p in ipairs(spawned) do p:kill("KILL") end
    spawned = {}
  end)
  teardown(test.cleanup)

  it("runs a handler on the loop at each signal, and a TERM handler ends the run cleanly", function()
    local p = start([[
      local hups = 0
      sts.signal("HUP", function(name) hups = hups + 1; print(name:lower() .. " " .. hups) end)
      sts.signal("SIGUSR1", function(name) print("got " .. name) end)
      sts.signal("TERM", function() print("bye"); sts.stop() end)
      ready()
      sts.run()
      print("run returned")
    ]])
    send(p, "HUP")
    expect(p, "hup 1\n")
    send(p, "HUP")
    expect(p, "hup 2\n")
    send(p, "USR1")
    expect(p, "got USR1\n")
    send(p, "HUP")
    expect(p, "hup 3\n")
    send(p, "TERM")
    expect(p, "bye\nrun returned\n")
    assert.equal(0, p:wait(), p:output())
  end)

  it("reports an error in a handler with its traceback, and goes on serving", function()
    local p = start([[
      local function broken() error("usr2 handler failed on purpose") end
      sts.signal("USR2", function() broken() end)
      sts.signal("HUP", function() print("hup after the error") end)
      sts.signal("TERM", sts.stop)
      ready()
      sts.run()
      print("handler errors " .. sts.stats().handler_errors)
    ]])
    send(p, "USR2")
    expect(p, "usr2 handler failed on purpose")
    expect(p, "stack traceback:.-broken")
    send(p, "HUP")
    expect(p, "hup after the error\n")
    send(p, "TERM")
    expect(p, "handler errors 1\n")
    assert.equal(0, p:wait(), p:output())
  end)

  it("restores the default with sts.signal(name, nil): the next HUP ends the process", function()
    local p = start([[
      sts.signal("HUP", function() print("hup handled") end)
      sts.signal("USR1", function() sts.signal("HUP", nil); print("hup handler removed") end)
      ready()
      sts.run()
      print("must not get here")
    ]])
    send(p, "HUP")
    expect(p, "hup handled\n")
    send(p, "USR1")
    expect(p, "hup handler removed\n")
    send(p, "HUP")
    -- The wrapping shell reports a death by signal N as 128 + N.
    assert.equal(128 + 1, p:wait(), p:output())
    assert.not_matches("must not get here", p:output())
  end)

  it("keeps sts.run waiting while a handler is registered, and not once it is removed", function()
    local p = start([[
      sts.signal("USR2", function(name) print("got " .. name); sts.stop() end)
      ready()
      sts.run()
      print("returned")
      sts.signal("USR2", nil)
      sts.run()
      print("returned with nothing left")
    ]])
    send(p, "USR2")
    -- Had the handler not kept the first run going, "returned" would come first.
    expect(p, "ready %d+\ngot USR2\nreturned\nreturned with nothing left\n")
    assert.equal(0, p:wait(), p:output())
  end)

  it("delivers a signal sent to this process on the next turn of its loop", function()
    local got
    sts.signal("USR2", function(name) got = name; sts.stop() end)
    local started = sts.now()
    assert.truthy(os.execute("kill -USR2 " .. own_pid()))
    sts.run(5)
    assert.equal("USR2", got)
    assert.is_true(sts.now() - started < 1)
    assert.is_true(sts.signal("USR2", nil))
  end)

  it("refuses unknown signals and a missing or wrong handler", function()
    assert.error_matches(function() sts.signal("KILL", print) end, "unknown signal 'KILL'")
    assert.error_matches(function() sts.signal("SIGSEGV", print) end, "unknown signal 'SIGSEGV'")
    assert.error_matches(function() sts.signal("hup", print) end, "unknown signal 'hup'")
    assert.error_matches(function() sts.signal(nil, print) end, "string expected")
    assert.error_matches(function() sts.signal("HUP") end, "value expected")
    assert.error_matches(function() sts.signal("HUP", 42) end, "function expected")
  end)
end)
