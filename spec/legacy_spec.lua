-- The original STS protocol's limits, through a real mosquitto: the shell
-- (`sts-lua --shell` processes fed commands) against the original as the
-- facts describe it (../shared/DESIGN.md §4 and the issue), emulated in this
-- process on sts.legacy, or against a shell in the other role:
--   - it receives at most 1019 - len(topic) bytes; a longer frame ends its
--     session, silently;
--   - its slave turns encryption on one second after KEYACK and drops the
--     ciphertext that comes before (its CBC chain does not move);
--   - it hangs in the handshake on some keys (a shared secret with a zero
--     byte), never answering the master's KEYREQ.
local sts = require "sts"
local test = require "sts.test"

local function plain(s)
  return (s:gsub("%p", "%%%0"))
end

describe("the original STS protocol's limits", function()
  local broker, dir
  local shells, clients = {}, {}

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
  end)
  teardown(function()
    for _, p in ipairs(shells) do p:kill() end
    for _, c in ipairs(clients) do c:disconnect() end
    broker:stop()
    test.cleanup()
  end)

  --- A connected client whose earlier subscriptions the broker has taken:
  -- `settle` waits for a probe on a topic subscribed after them.
  local function client()
    local c = assert(sts.connect(broker:options()))
    clients[#clients + 1] = c
    return c
  end

  local function settle(c)
    local probe, seen = "probe/" .. sts.hex(sts.random(6)), false
    assert(c:subscribe(probe, function() seen = true end))
    assert(c:publish(probe, "x"))
    assert(test.wait_until(function() return seen end), "the broker did not take the subscriptions")
    c:unsubscribe(probe)
  end

  --- A shell started with the config of `role` on topics pub and sub.
  local function shell(role, pub, sub, aes, name)
    local path = ("%s/%s-%s"):format(dir, name, role)
    test.write_file(path, table.concat({ "url = 127.0.0.1", "port = " .. broker.port, "sts_mode = " .. role,
      "aes = " .. (aes or "cbc"), "pubtop = " .. pub, "subtop = " .. sub }, "\n") .. "\n")
    local p = test.spawn_fed(test.quote(test.sts_lua()) .. " --shell", dir)
    shells[#shells + 1] = p
    p:send("start " .. path)
    return p
  end

  --- The original slave, subscribed to sub and publishing on pub, in aes
  -- (cbc). With hang, it hangs at the master's KEYREQ. got: messages in
  -- order; dropped: ciphertexts before encryption was on; died: the size of
  -- the frame that ended its session.
  local function original_slave(pub, sub, aes, hang)
    local o = { got = {}, dropped = 0, frames = {} }
    local side = sts.legacy.new{ role = "slave", mode = aes or "cbc" }
    local c = client()
    local function publish(frame) assert(c:publish(pub, frame)) end
    assert(c:subscribe(sub, function(_, frame)
      o.frames[#o.frames + 1] = frame
      if o.died or o.hung then return end
      if #frame > 1019 - #sub then
        o.died = #frame
        return
      end
      local state = side:state()
      if state == "established" and sts.now() < o.encrypting_at then
        o.dropped = o.dropped + 1
        return
      end
      if hang and state == "wait_keyreq" and frame:match("^KEYREQ:") then
        o.hung = true
        return
      end
      local r = assert(side:receive(frame))
      for _, f in ipairs(r.frames) do publish(f) end
      if r.event == "ready" then o.encrypting_at = sts.now() + 1 end
      if r.event == "message" then o.got[#o.got + 1] = r.message end
    end))
    settle(c)
    function o.send(text) publish(assert(side:seal(text))) end
    function o.state() return side:state() end
    function o.stop()
      c:disconnect()
      side:close()
    end
    return o
  end

  it("refuses a sendenc the original could not receive, naming its limit", function()
    -- 1019 - 3 = 1016, so 1008 in whole blocks: "ENC:" + 1003 + " ".
    for _, case in ipairs { { "m2s", "s2m", 1008, 1003 }, { "legacy/topic/twenty", "legacy/topic/back", 992, 987 } } do
      local pub, sub, frame_limit, longest = table.unpack(case)
      local original = original_slave(sub, pub)
      local master = shell("master", pub, sub, "cbc", "limit-" .. #pub)
      master:expect("session established")
      master:send("sendenc " .. ("x"):rep(longest + 1))
      master:expect("error: cannot send: " .. plain(("message too long for the original: on this topic it receives "
        .. "frames of at most %d bytes (1019 - %d topic bytes, in whole 16-byte blocks), so at most %d bytes of "
        .. "message"):format(frame_limit, #pub, longest)))
      master:send("sendenc " .. ("y"):rep(longest))
      master:send("sendenc after the longest")
      assert(test.wait_until(function() return #original.got == 2 end), master:output())
      assert.equal(("y"):rep(longest), original.got[1])
      assert.equal("after the longest", original.got[2])
      assert.is_nil(original.died)
      assert.equal(frame_limit, #original.frames[#original.frames - 1])
      master:send("status")
      master:expect("limit:    " .. longest .. " bytes a message %(what the original receives on '" .. plain(pub) .. "'%)")
      master:expect("messages: 2 sent")
      master:finish()
      original.stop()
    end
  end)

  it("holds a master's encrypted sends until the original slave encrypts, in order, the chain in step", function()
    local original = original_slave("hold/s2m", "hold/m2s")
    -- Typed at once: each sendenc waits for the handshake, then is held.
    local master = shell("master", "hold/m2s", "hold/s2m", "cbc", "hold")
    for i = 1, 3 do master:send("sendenc held " .. i) end
    master:send("status")
    master:expect("established %(handshake [%d.]+ ms%), 3 message%(s%) held until the slave turns encryption on")
    assert(test.wait_until(function() return #original.got == 3 end), master:output())
    assert.are.same({ "held 1", "held 2", "held 3" }, original.got)
    assert.equal(0, original.dropped)
    -- Both ways after them: one CBC chain, still in step.
    original.send("ack from the original")
    master:expect("%[MQTT_INC%]: ack from the original\n")
    master:send("sendenc and back")
    assert(test.wait_until(function() return #original.got == 4 end), master:output())
    assert.equal("and back", original.got[4])
    master:send("status")
    master:expect("messages: 4 sent, 1 received, 0 rejected")
    master:finish()
    original.stop()
  end)

  it("sends the held messages before the KILL when stopped", function()
    local original = original_slave("held-stop/s2m", "held-stop/m2s", "ecb")
    local master = shell("master", "held-stop/m2s", "held-stop/s2m", "ecb", "held-stop")
    master:send("sendenc last words")
    master:send("stop")
    master:expect("sent KILL to the slave")
    assert(test.wait_until(function() return original.state() == "closed" end),
      ("got %d, dropped %d:\n%s"):format(#original.got, original.dropped, master:output()))
    assert.are.same({ "last words" }, original.got)
    assert.equal(0, original.dropped)
    master:finish()
    original.stop()
  end)

  it("starts a master's handshake over when the original slave hangs in it", function()
    local hung = original_slave("hang/s2m", "hang/m2s", "cbc", true)
    local master = shell("master", "hang/m2s", "hang/s2m", "cbc", "hang")
    assert(test.wait_until(function() return hung.hung end), master:output())
    master:send("status")
    master:expect("state:    wait keyack")
    master:expect("the handshake stalled in wait keyack for 3 s; starting over with INITREQ and a new key", 10)
    -- The INITREQ again, after the KEYREQ: the handshake from the start.
    assert(test.wait_until(function() return #hung.frames >= 3 end))
    assert.matches("^KEYREQ:", hung.frames[2])
    assert.equal("INITREQ:request", hung.frames[3])
    -- The hung original is restarted by its user; the master's INITREQ reaches the new one.
    hung.stop()
    local restarted = original_slave("hang/s2m", "hang/m2s")
    master:expect("session established", 15)
    master:send("sendenc after the restart")
    assert(test.wait_until(function() return #restarted.got == 1 end), master:output())
    assert.equal("after the restart", restarted.got[1])
    assert.equal(0, restarted.dropped)
    master:finish()
    restarted.stop()
  end)

  --- A master played here on sts.legacy: publishes on pub, reads sub.
  local function raw_master(pub, sub, aes)
    local m = { inbox = {} }
    local c = client()
    assert(c:subscribe(sub, function(_, frame) m.inbox[#m.inbox + 1] = frame end))
    settle(c)
    function m.new() m.side = sts.legacy.new{ role = "master", mode = aes or "cbc" } end
    function m.publish(frames) for _, f in ipairs(frames) do assert(c:publish(pub, f)) end end
    function m.next()
      assert(test.wait_until(function() return #m.inbox > 0 end), "no frame from the slave")
      return table.remove(m.inbox, 1)
    end
    --- Handshakes until state (default established), answering the slave.
    function m.handshake(upto)
      m.new()
      m.publish(m.side:start())
      while m.side:state() ~= (upto or "established") do m.publish(assert(m.side:receive(m.next())).frames) end
    end
    return m
  end

  --- A slave shell on tag/m2s and tag/s2m, waiting for INITREQ, and a raw master for it.
  local function shell_slave(tag, aes)
    local slave = shell("slave", tag .. "/s2m", tag .. "/m2s", aes, tag)
    slave:expect("waiting for the master's INITREQ")
    return slave, raw_master(tag .. "/m2s", tag .. "/s2m", aes)
  end

  it("lets a slave take a restarted master's INITREQ, in a session and in a handshake", function()
    local slave, master = shell_slave("restart", "cbc")
    master.handshake()
    slave:expect("session established")
    master.publish{ master.side:seal("first life") }
    slave:expect("%[MQTT_INC%]: first life\n")

    -- The master restarts: no KILL, a new key, INITREQ in the slave's session.
    master.handshake()
    slave:expect("the master started a new handshake %(INITREQ%): the keys so far are dropped")
    master.publish{ master.side:seal("second life") }
    slave:expect("%[MQTT_INC%]: second life\n")
    slave:send("sendenc to the second master")
    assert.equal("to the second master", assert(master.side:receive(master.next())).message)

    -- It restarts again at once: anyone on the topic can send INITREQ, so the
    -- session takes one a handshake timeout (3 s) after the last restart, not sooner.
    master.new()
    master.publish(master.side:start())
    slave:expect("rejected a 15%-byte frame on 'restart/m2s': INITREQ in a session restarted less than 3 s ago")
    assert(test.wait_until(function()
      if #master.inbox > 0 then return true end
      master.publish{ "INITREQ:request" } -- as the original master repeats it
    end, 10, 1), "the slave never took the repeated INITREQ")
    -- That handshake stops while the slave waits for its KEYACK.
    while master.side:state() ~= "wait_keyreq" do master.publish(assert(master.side:receive(master.next())).frames) end
    assert.matches("^KEYREQ:X%x+Y$", master.next()) -- the slave's, never answered
    slave:send("status")
    slave:expect("state:    wait keyack")
    master.handshake()
    slave:expect("the master started a new handshake.*the master started a new handshake")
    master.publish{ master.side:seal("third life") }
    slave:expect("%[MQTT_INC%]: third life\n")
    slave:finish()
  end)

  it("returns a stalled slave to waiting for INITREQ after the timeout", function()
    local slave, master = shell_slave("stall", "ecb")
    master.new()
    master.publish(master.side:start())
    master.publish(assert(master.side:receive(master.next())).frames) -- INITACK in, KEYREQ out
    assert.equal("KEYACK:", master.next())
    master.next() -- the slave's KEYREQ, which this master never answers
    slave:send("status")
    slave:expect("state:    wait keyack")
    slave:expect("the handshake stalled in wait keyack for 3 s; waiting for a new INITREQ on 'stall/m2s'", 10)
    slave:send("status")
    slave:expect("state:    wait initreq")
    master.handshake()
    slave:expect("session established")
    master.publish{ master.side:seal("after the stall") }
    slave:expect("%[MQTT_INC%]: after the stall\n")
    slave:finish()
  end)

  it("re-establishes a slave shell with a master shell restarted without a KILL", function()
    local slave = shell("slave", "shells/s2m", "shells/m2s", "cbc", "shells")
    slave:expect("waiting for the master's INITREQ")
    local master = shell("master", "shells/m2s", "shells/s2m", "cbc", "shells")
    slave:expect("session established")
    master:send("sendenc before the crash")
    slave:expect("%[MQTT_INC%]: before the crash\n")
    -- A crash: SIGKILL, its input still open, so no KILL frame: the slave stays in its session.
    assert(os.execute(("kill -KILL -%d"):format(master.pid)))
    assert(master:wait(5))
    local again = shell("master", "shells/m2s", "shells/s2m", "cbc", "shells")
    slave:expect("the master started a new handshake")
    again:expect("session established")
    again:send("sendenc after the crash")
    slave:expect("%[MQTT_INC%]: after the crash\n")
    slave:send("sendenc and back")
    again:expect("%[MQTT_INC%]: and back\n")
    again:finish()
    slave:expect("the master ended the session %(KILL%)")
    slave:finish()
  end)
end)
