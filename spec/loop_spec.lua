-- The event loop as scripts see it: timers, sts.run/stop, tasks and futures.
local sts = require "sts"

describe("the event loop", function()
  it("fires timers in deadline order and runs until nothing is left", function()
    -- Deadlines 50 ms apart, and the start read first, so that a slow
    -- (emulated) CPU arming them cannot reorder them.
    local order = {}
    local started = sts.now()
    sts.after(0.15, function() order[#order + 1] = "c" end)
    sts.after(0.05, function() order[#order + 1] = "a" end)
    sts.after(0.10, function() order[#order + 1] = "b" end)
    sts.run()
    assert.same({ "a", "b", "c" }, order)
    assert.is_true(sts.now() - started >= 0.15)
  end)

  it("repeats sts.every until cancelled, and a cancelled timer never fires", function()
    local ticks = 0
    local t
    t = sts.every(0.01, function()
      ticks = ticks + 1
      if ticks == 3 then t:cancel() end
    end)
    local never = sts.after(0.02, function() error("must not fire") end)
    never:cancel()
    assert.is_false(never:active())
    sts.run(0.2)
    assert.equal(3, ticks)
    assert.is_false(t:active())
  end)

  it("returns from sts.run after the given seconds, or at sts.stop()", function()
    local keep = sts.every(0.01, function() end)
    local started = sts.now()
    sts.run(0.1)
    local elapsed = sts.now() - started
    assert.is_true(elapsed >= 0.1 and elapsed < 0.5, "ran " .. elapsed)
    sts.after(0.02, sts.stop)
    started = sts.now()
    sts.run(5)
    assert.is_true(sts.now() - started < 1)
    keep:cancel()
  end)

  it("counts and survives an error in a timer callback", function()
    local before = sts.stats().handler_errors
    local after_error = false
    sts.after(0.01, function() error("timer failed on purpose") end)
    sts.after(0.02, function() after_error = true end)
    sts.run()
    assert.is_true(after_error)
    assert.equal(before + 1, sts.stats().handler_errors)
  end)

  it("refuses to run nested inside a handler", function()
    local err
    sts.after(0, function() err = select(2, pcall(sts.run, 1)) end)
    sts.run()
    assert.matches("cannot be called from a handler", err)
  end)

  describe("tasks and futures", function()
    it("waits for a future from the main chunk, with or without a timeout", function()
      local f = sts.future()
      sts.after(0.02, function() f:set("done", 42) end)
      local a, b = f:wait(1)
      assert.equal("done", a)
      assert.equal(42, b)
      assert.is_true(f:done())
      local g = sts.future()
      local started = sts.now()
      local v, err = g:wait(0.05)
      assert.is_nil(v)
      assert.equal("timeout", err)
      assert.is_true(sts.now() - started >= 0.05)
    end)

    it("yields from a task while the loop serves others", function()
      local log = {}
      local f = sts.future()
      sts.task(function()
        log[#log + 1] = "task waits"
        local v = f:wait(1)
        log[#log + 1] = "task got " .. v
      end)
      log[#log + 1] = "main goes on"
      sts.after(0.01, function() f:set("x") end)
      sts.run()
      assert.same({ "task waits", "main goes on", "task got x" }, log)
    end)

    it("lets tasks sleep, and a bare yield lets the loop turn", function()
      local steps = {}
      sts.task(function()
        steps[#steps + 1] = 1
        coroutine.yield()
        steps[#steps + 1] = 3
        sts.sleep(0.02)
        steps[#steps + 1] = 4
      end)
      steps[#steps + 1] = 2
      sts.run()
      assert.same({ 1, 2, 3, 4 }, steps)
    end)

    it("logs and counts an error in a task", function()
      local before = sts.stats().handler_errors
      sts.task(function()
        sts.sleep(0.01)
        error("task failed on purpose")
      end)
      sts.run()
      assert.equal(before + 1, sts.stats().handler_errors)
    end)

    it("refuses to wait in a coroutine that is not a task", function()
      local co = coroutine.wrap(function() return pcall(sts.sleep, 0.01) end)
      local ok, err = co()
      assert.is_false(ok)
      assert.matches("not an sts.task", err)
    end)
  end)

  it("gives monotonic time as a float", function()
    local a = sts.now()
    local b = sts.now()
    assert.is_number(a)
    assert.is_true(b >= a)
  end)

  it("logs at the level set by sts.log.level", function()
    local old = sts.log.level
    sts.log.level = "error"
    assert.equal("error", sts.log.level)
    assert.has_error(function() sts.log.level = "loud" end)
    sts.log.level = old
  end)
end)
