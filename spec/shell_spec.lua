-- The Secure Telemetry Shell through a real mosquitto: `sts-lua --shell`
-- processes fed commands over a pipe, as a user would type them, and raw
-- MQTT clients that watch or forge the frames between them.
local sts = require "sts"
local test = require "sts.test"
local Config = require "sts.shell.config"

local RECORDED = "../shared/vectors/legacy-sts/handshake-cbc.json"

local function unhex(h)
  return (h:gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end))
end

local function count(text, plain)
  local n, at = 0, 1
  while true do
    local s, e = text:find(plain, at, true)
    if not s then return n end
    n, at = n + 1, e + 1
  end
end

describe("the shell", function()
  local broker, dir
  local shells = {}

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
  end)
  teardown(function()
    for _, p in ipairs(shells) do p:kill() end
    broker:stop()
    test.cleanup()
  end)

  --- Writes a config file for this broker; `lines` may use {port}.
  local function config(name, lines)
    local path = dir .. "/" .. name
    local text = table.concat(lines, "\n"):gsub("{port}", tostring(broker.port))
    test.write_file(path, text .. "\n")
    return path
  end

  local function spawn_shell()
    local p = test.spawn_fed(test.quote(test.sts_lua()) .. " --shell", dir)
    shells[#shells + 1] = p
    return p
  end

  --- A shell with `commands` typed in; waits for `pattern` if given.
  local function shell_with(commands, pattern)
    local p = spawn_shell()
    for _, c in ipairs(commands) do p:send(c) end
    if pattern then
      assert(p:wait_for(pattern), "no '" .. pattern .. "' in:\n" .. p:output())
    end
    return p
  end

  local function legacy_configs(aes, tag)
    local master = config("legacy-master-" .. tag, {
      "# original STS config", "url = 127.0.0.1", "port = {port}", "sts_mode = master",
      "aes = " .. aes, "pubtop = " .. tag .. "/m2s", "subtop = " .. tag .. "/s2m",
    })
    local slave = config("legacy-slave-" .. tag, {
      "ip = 127.0.0.1", "port={port}", "sts_mode=slave", "aes=" .. aes,
      "pubtop = " .. tag .. "/s2m", "subtop = " .. tag .. "/m2s",
    })
    return master, slave
  end

  --- A started legacy slave and master, established.
  local function legacy_pair(aes, tag)
    local mcfg, scfg = legacy_configs(aes, tag)
    local slave = shell_with({ "start " .. scfg }, "waiting for the master's INITREQ")
    local master = shell_with({ "start " .. mcfg })
    master:expect("session established")
    slave:expect("session established")
    return master, slave
  end

  describe("in nosec mode", function()
    it("sends and receives plain messages between two shells", function()
      local a_cfg = config("nosec-a", { "url = 127.0.0.1", "port = {port}", "sts_mode = nosec",
        "subtop = chat/b", "pubtop = chat/a" })
      local b_cfg = config("nosec-b", { "url = 127.0.0.1", "port = {port}", "sts_mode = nosec",
        "aes = null", "subtop = chat/a", "pubtop = chat/b" })
      local a = shell_with({ "start " .. a_cfg }, "session started")
      local b = shell_with({ "start " .. b_cfg }, "session started")
      a:send("send hello from a, with  two spaces")
      b:expect("%[MQTT_INC%]: hello from a, with  two spaces\n")
      b:send("send and back from b")
      a:expect("%[MQTT_INC%]: and back from b\n")
      a:send("sendenc secret")
      a:expect("error: encryption is off %(sts_mode = nosec%): use send")
      a:finish()
      b:finish()
      assert.matches("session stopped", a:output())
    end)

    it("publishes and subscribes on other topics with pub and sub", function()
      local cfg = config("nosec-sub", { "url = 127.0.0.1", "port = {port}", "sts_mode = nosec",
        "subtop = own/in", "pubtop = own/out" })
      local p = shell_with({ "start " .. cfg, "sub extra/#" }, "session started")
      sts.sleep(0.2)
      p:send("pub extra/x a plain note")
      p:expect("%[MQTT_INC extra/x%]: a plain note")
      p:finish()
    end)

    it("shows control characters from the network escaped", function()
      local cfg = config("nosec-esc", { "url = 127.0.0.1", "port = {port}", "sts_mode = nosec",
        "subtop = esc/in", "pubtop = esc/out" })
      local p = shell_with({ "start " .. cfg }, "session started")
      local c = assert(sts.connect(broker:options()))
      assert(c:publish("esc/in", "red \27[31m bell \7 csi \194\155 é"))
      p:expect("%[MQTT_INC%]: red \\x1b%[31m bell \\x07 csi \\u009b é\n")
      c:disconnect()
      p:finish()
    end)

    it("runs a Lua script in the session", function()
      local cfg = config("nosec-run", { "url = 127.0.0.1", "port = {port}", "sts_mode = nosec",
        "subtop = run/echo", "pubtop = run/echo" })
      local script = dir .. "/greet.lua"
      test.write_file(script, [[
        local shell, who = ...
        assert(shell.client():connected())
        for i = 1, 3 do assert(shell.command("send greeting " .. i .. " to " .. who)) end
        local ok, err = shell.command("sendenc nope")
        shell.print("sendenc refused:", not ok, err ~= nil)
      ]])
      local p = shell_with({ "start " .. cfg, "run " .. script .. " bob" }, "sendenc refused:\ttrue\ttrue")
      for i = 1, 3 do p:expect("%[MQTT_INC%]: greeting " .. i .. " to bob") end
      p:finish()
    end)
  end)

  describe("with the original STS protocol", function()
    for _, aes in ipairs{ "ecb", "cbc" } do
      it("runs a master and a slave shell against each other in " .. aes:upper(), function()
        local tag = "pair-" .. aes
        -- A raw client records what goes over the wire.
        local wire = {}
        local spy = assert(sts.connect(broker:options()))
        assert(spy:subscribe(tag .. "/#", function(topic, payload)
          wire[#wire + 1] = { topic = topic:match("[^/]+$"), payload = payload }
        end))
        sts.sleep(0.2)
        local master, slave = legacy_pair(aes, tag)

        -- Both ways, several times: in CBC each frame moves the one shared chain.
        master:send("sendenc hello slave")
        slave:expect("%[MQTT_INC%]: hello slave\n")
        slave:send("sendenc hello master, a message longer than one block")
        master:expect("%[MQTT_INC%]: hello master, a message longer than one block\n")
        master:send("sendenc one")
        master:send("sendenc two")
        slave:expect("%[MQTT_INC%]: two\n")
        slave:send("send in clear")
        slave:expect("error: encryption is on %(.*%): use sendenc")
        master:send("stop")
        master:expect("sent KILL to the slave")
        slave:expect("the master ended the session %(KILL%)")
        slave:expect("waiting for a new INITREQ")
        master:finish()
        slave:finish()
        spy:disconnect()

        -- The original order of the handshake frames, on the config's topics.
        local want = { { "m2s", "^INITREQ:request$" }, { "s2m", "^INITACK:$" },
          { "m2s", "^KEYREQ:X%x+Y$" }, { "s2m", "^KEYACK:$" }, { "s2m", "^KEYREQ:X%x+Y$" },
          { "m2s", "^KEYACK:$" } }
        for i, w in ipairs(want) do
          assert.equal(w[1], wire[i].topic)
          assert.matches(w[2], wire[i].payload)
        end
        -- Then ciphertext: whole AES blocks, four messages and the KILL.
        assert.equal(#want + 5, #wire)
        for i = #want + 1, #wire do
          assert.equal(0, #wire[i].payload % 16)
          assert.is_nil(wire[i].payload:find("hello", 1, true))
        end
        assert.equal(16, #wire[#wire].payload) -- "KILL:" padded to one block
        -- The warning comes once per session.
        for _, p in ipairs{ master, slave } do
          assert.equal(1, count(p:output(), "neither integrity nor authentication"))
        end
      end)
    end

    --- A legacy slave shell, and a raw client in the master's place: returns
    -- the shell, the client and a function that waits for the slave's next frame.
    local function slave_and_raw_master(tag, aes)
      local _, scfg = legacy_configs(aes, tag)
      local slave = shell_with({ "start " .. scfg }, "waiting for the master's INITREQ")
      local inbox = {}
      local c = assert(sts.connect(broker:options()))
      assert(c:subscribe(tag .. "/s2m", function(_, payload) inbox[#inbox + 1] = payload end))
      sts.sleep(0.2)
      local function next_frame()
        assert(test.wait_until(function() return #inbox > 0 end), "no frame from the slave:\n" .. slave:output())
        return table.remove(inbox, 1)
      end
      return slave, c, next_frame
    end

    it("keeps sending INITREQ until a slave starts", function()
      local mcfg, scfg = legacy_configs("cbc", "late")
      local master = shell_with({ "start " .. mcfg }, "no slave has answered")
      sts.sleep(0.5)
      local slave = shell_with({ "start " .. scfg })
      slave:expect("session established", 15)
      master:expect("session established", 15)
      master:send("sendenc made it")
      slave:expect("%[MQTT_INC%]: made it")
      master:finish()
      slave:finish()
    end)

    it("sendenc waits for a handshake in progress", function()
      local mcfg, scfg = legacy_configs("ecb", "eager")
      local slave = shell_with({ "start " .. scfg }, "waiting for the master's INITREQ")
      -- Typed at once: sendenc runs while the handshake is still going.
      shell_with({ "start " .. mcfg, "sendenc without waiting" })
      slave:expect("%[MQTT_INC%]: without waiting")
    end)

    it("sends KILL when its input ends", function()
      local master, slave = legacy_pair("cbc", "eof")
      master:finish()
      slave:expect("the master ended the session %(KILL%)")
      slave:finish()
    end)

    it("rejects malformed and out-of-order frames and keeps the session", function()
      -- The shell is the slave; this spec plays the master with sts.legacy,
      -- and forges frames in between.
      local slave, c, next_frame = slave_and_raw_master("forge", "cbc")
      local rejected = 0
      local function forge(frame, why)
        assert(c:publish("forge/m2s", frame))
        rejected = rejected + 1
        slave:expect(("rejected a %d%%-byte frame on 'forge/m2s': %s"):format(#frame, why:gsub("%p", "%%%0")))
        assert.equal(rejected, count(slave:output(), "warning: rejected"))
      end

      forge("no colon here", "handshake frame has no ':' after its header")
      forge("KEYACK:", "handshake frame out of order")
      local master = sts.legacy.new{ role = "master", mode = "cbc" }
      local function deliver(frame)
        local r = assert(master:receive(frame))
        for _, f in ipairs(r.frames) do assert(c:publish("forge/m2s", f)) end
        return r
      end
      assert(c:publish("forge/m2s", master:start()[1]))
      local initack = next_frame()
      -- The slave now waits for our KEYREQ: send it bad ones first.
      forge("KEYREQ:X" .. ("A"):rep(1991) .. "Y", "KEYREQ public key is not 1 to 64 hex digits")
      forge("KEYREQ:X12G4Y", "KEYREQ public key has a digit that is not hex")
      forge("KEYREQ:X1234", "KEYREQ is not of the form X<hex>Y")
      forge("KEYREQ:X1234Y5678", "KEYREQ with a Y coordinate (the older secp256k1 variant) is not supported")
      forge(("x"):rep(3000), "frame longer than 2048 bytes")
      deliver(initack) -- our KEYREQ goes out
      deliver(next_frame()) -- KEYACK
      local r = deliver(next_frame()) -- the slave's KEYREQ; we answer KEYACK
      assert.equal("ready", r.event)
      slave:expect("session established")

      forge(("\0"):rep(16), "decrypted frame has no ENC:/KILL: prefix")
      forge("INITACK:", "handshake frame out of order")
      forge("short", "ciphertext length is not a non-zero multiple of 16")
      -- The chain did not move: the next real frame still decrypts.
      assert(c:publish("forge/m2s", master:seal("still in sync")))
      slave:expect("%[MQTT_INC%]: still in sync\n")
      slave:send("sendenc and the answer too")
      local answer = assert(master:receive(next_frame()))
      assert.equal("and the answer too", answer.message)
      slave:send("status")
      slave:expect("1 sent, 1 received, " .. rejected .. " rejected")
      assert.is_true(slave:alive())
      slave:finish()
      c:disconnect()
    end)

    it("completes handshake after handshake, secrets with zero bytes among them", function()
      -- About 12% of secrets have a zero byte, which hung the original; 40
      -- rounds miss them once in 170 runs (the C unit tests pin such keys).
      local slave, c, next_frame = slave_and_raw_master("zeros", "ecb")
      for round = 1, 40 do
        local master = sts.legacy.new{ role = "master", mode = "ecb" }
        local frames = master:start()
        while master:state() ~= "established" do
          for _, f in ipairs(frames) do assert(c:publish("zeros/m2s", f)) end
          frames = assert(master:receive(next_frame())).frames
        end
        for _, f in ipairs(frames) do assert(c:publish("zeros/m2s", f)) end
        assert(c:publish("zeros/m2s", master:seal("round " .. round)))
        slave:expect("%[MQTT_INC%]: round " .. round .. "\n")
        assert(c:publish("zeros/m2s", master:kill()))
        assert(test.wait_until(function() return count(slave:output(), "waiting for a new INITREQ") == round end))
      end
      slave:finish()
      c:disconnect()
    end)
  end)

  describe("with the native STS protocol", function()
    --- Makes NAME.key and NAME.pub in dir; returns the public key's fingerprint.
    local function keypair(name)
      return assert(require("sts.keyfiles").write_pair(dir .. "/" .. name))
    end

    local function native_configs(tag, master_key, slave_key, slave_pins)
      local function side(role, own, peer, pub, sub)
        return config(("native-%s-%s"):format(role, tag), { "url = 127.0.0.1", "port = {port}",
          "protocol = sts", "sts_mode = " .. role, "identity = " .. dir .. "/" .. own .. ".key",
          "peer = " .. dir .. "/" .. peer .. ".pub", "pubtop = " .. tag .. pub, "subtop = " .. tag .. sub })
      end
      return side("master", master_key, slave_key, "/m2s", "/s2m"),
             side("slave", slave_key, slave_pins or master_key, "/s2m", "/m2s")
    end

    it("runs a master and a slave shell against each other", function()
      local tag = "native"
      local mfp, sfp = keypair("n-master"), keypair("n-slave")
      local mcfg, scfg = native_configs(tag, "n-master", "n-slave")
      local wire = {}
      local spy = assert(sts.connect(broker:options()))
      assert(spy:subscribe(tag .. "/#", function(_, payload) wire[#wire + 1] = payload end))
      sts.sleep(0.2)
      local slave = shell_with({ "start " .. scfg }, "waiting for the master's handshake")
      local master = shell_with({ "start " .. mcfg })
      master:expect("session established %(native STS protocol, master, peer " .. sfp:gsub("%p", "%%%0") .. "%)")
      slave:expect("session established %(native STS protocol, slave, peer " .. mfp:gsub("%p", "%%%0") .. "%)")

      master:send("sendenc hello native slave")
      slave:expect("%[MQTT_INC%]: hello native slave\n")
      slave:send("sendenc hello native master")
      master:expect("%[MQTT_INC%]: hello native master\n")
      master:send("send in clear")
      master:expect("error: encryption is on %(native STS protocol.*%): use sendenc")
      master:send("fingerprint")
      master:expect("this side: " .. mfp:gsub("%p", "%%%0") .. "\npeer:      " .. sfp:gsub("%p", "%%%0"))
      master:send("status")
      master:expect("messages: 1 sent, 1 received, 0 rejected")
      master:send("stop")
      slave:expect("the master ended the session")
      slave:expect("waiting for a new handshake")
      master:finish()
      slave:finish()
      spy:disconnect()
      assert.is_true(#wire >= 5)
      for _, payload in ipairs(wire) do assert.is_nil(payload:find("hello native", 1, true)) end
    end)

    it("gets no session when the slave pins another key", function()
      keypair("x-master")
      keypair("x-slave")
      keypair("x-stranger")
      local mcfg, scfg = native_configs("pinned", "x-master", "x-slave", "x-stranger")
      local slave = shell_with({ "start " .. scfg }, "waiting for the master's handshake")
      local master = shell_with({ "start " .. mcfg })
      slave:expect("rejected input: untrusted", 15)
      assert.is_nil(master:output():find("session established", 1, true))
      assert.is_nil(slave:output():find("session established", 1, true))
      master:finish()
      slave:finish()
    end)

    it("reports a key file it cannot use with the config's line", function()
      keypair("loose")
      os.execute("chmod 644 " .. test.quote(dir .. "/loose.key"))
      local cfg = config("native-loose", { "url = 127.0.0.1", "port = {port}", "protocol = sts",
        "sts_mode = master", "identity = " .. dir .. "/loose.key", "peer = " .. dir .. "/loose.pub" })
      local p = shell_with({ "start " .. cfg }, "error: ")
      p:expect((cfg .. ":5: key 'identity': " .. dir .. "/loose.key: private key is accessible by others"):gsub("%p", "%%%0"))
      p:finish()
    end)

    it("makes key pairs with keygen", function()
      local name = dir .. "/made"
      local p = shell_with({ "keygen " .. name, "keygen " .. name }, "exists: remove it first")
      local public = assert(test.read_file(name .. ".pub"))
      p:expect((name .. ".key, " .. name .. ".pub: " .. sts.fingerprint(public)):gsub("%p", "%%%0"))
      local stat = io.popen("stat -c %a " .. test.quote(name .. ".key"))
      assert.equal("600", stat:read("l"))
      stat:close()
      assert(sts.public_key(name .. ".key"))
      p:finish()
    end)
  end)

  describe("protocol = group", function()
    local server, ks_client, spy, acl
    local frames = {} -- what the broker sees on the group's topic
    local PREFIX = "shell-groups"

    --- Makes NAME.key and NAME.pub in dir; returns the public key as hex.
    local function member_key(name)
      assert(require("sts.keyfiles").write_pair(dir .. "/" .. name))
      return test.read_file(dir .. "/" .. name .. ".pub"):match("\n(%x+)")
    end

    local function write_acl(members)
      local lines = { "# key name groups rights" }
      for name, hex in pairs(members) do lines[#lines + 1] = ("%s %s chat rw"):format(hex, name) end
      test.write_file(acl, table.concat(lines, "\n") .. "\n")
    end

    local function group_config(name)
      return config("group-" .. name, { "# a member of chat", "url = 127.0.0.1", "port = {port}",
        "protocol = group", "group = chat", "identity = " .. dir .. "/" .. name .. ".key",
        "keyserver = " .. dir .. "/gks.pub", "prefix = " .. PREFIX })
    end

    local members = {}
    setup(function()
      member_key("gks")
      for _, name in ipairs { "alice", "bob", "carol" } do members[name] = member_key(name) end
      member_key("mallory") -- a key, but not in the access list
      acl = dir .. "/groups.acl"
      write_acl(members)
      ks_client = assert(sts.connect(broker:options()))
      server = assert(sts.group.serve(ks_client, { identity = dir .. "/gks.key", acl = acl, prefix = PREFIX }))
      spy = assert(sts.connect(broker:options()))
      assert(spy:subscribe(sts.group.topic("chat", PREFIX), function(_, payload) frames[#frames + 1] = payload end,
        { qos = 1 }))
    end)
    teardown(function()
      spy:disconnect()
      server:close()
      ks_client:disconnect()
    end)

    local function joined(name)
      local p = shell_with({ "start " .. group_config(name) })
      p:expect("joined group chat %(method static, epoch %d+%): handshake [%d.]+ ms, [%d.]+ ms since start\n")
      return p
    end

    it("sends to the group and prints what the others send with the sender's name", function()
      local a, b = joined("alice"), joined("bob")
      assert(test.wait_until(function() return server:stats().members == 2 end), "not two members")
      a:send("send hello group, with  two spaces")
      b:expect("\n%[MQTT_INC alice%]: hello group, with  two spaces\n")
      b:send("sendenc and back from bob \27[31m")
      a:expect("\n%[MQTT_INC bob%]: and back from bob \\x1b%[31m\n")
      -- The broker saw only group frames, never the text.
      assert(test.wait_until(function() return #frames >= 2 end))
      for _, f in ipairs(frames) do assert.is_nil(f:find("hello group", 1, true)) end
      -- A frame replayed by the broker is refused, counted and shown by reason.
      local c = assert(sts.connect(broker:options()))
      assert(c:publish(sts.group.topic("chat", PREFIX), frames[1], { qos = 1 }))
      b:send("status")
      b:expect("session:  " .. (dir .. "/group-bob: native STS group 'chat', method static\n"):gsub("%p", "%%%0"))
      b:expect("topics:   subscribed to '" .. PREFIX:gsub("%p", "%%%0") .. "/data/chat', publishing on '"
        .. PREFIX:gsub("%p", "%%%0") .. "/data/chat', QoS 1\n")
      b:expect("state:    joined as index %d+, epoch %d+ %(handshake [%d.]+ ms, 0 rekeys%), up %d+ s\n")
      c:disconnect()
      assert(test.wait_until(function()
        b:send("status")
        return b:wait_for("messages: 1 sent, 1 received, 1 rejected\nrejected: replay 1\n", 1)
      end), b:output())
      a:send("status")
      a:expect("messages: 1 sent, 1 received, 0 rejected\nrejected: none\n")
      a:send("fingerprint")
      a:expect(("this side:  " .. sts.fingerprint(sts.public_key(dir .. "/alice.key")) .. "\nkey server: "
        .. sts.fingerprint(test.read_file(dir .. "/gks.pub"))):gsub("%p", "%%%0"))
      -- stop leaves the group: the key server hears it, the shell has no session.
      a:send("stop")
      a:expect("left group 'chat'\nsession stopped\n")
      assert(test.wait_until(function() return server:stats().members == 1 end), "alice did not leave")
      a:send("status")
      a:expect("\nno session\n")
      a:finish()
      b:finish()
      assert.is_nil(a:output():find("AddressSanitizer", 1, true), a:output())
    end)

    it("prints the key server's refusal and stays usable", function()
      local p = shell_with({ "start " .. group_config("mallory") }, "error: ")
      p:expect("error: cannot join: group chat: not in the access list\n")
      p:send("status")
      p:expect("\nno session\n")
      local cfg = config("after-refusal", { "url = 127.0.0.1", "port = {port}", "sts_mode = nosec",
        "subtop = refused/in", "pubtop = refused/out" })
      p:send("start " .. cfg)
      p:expect("session started")
      assert.equal(0, server:stats().members)
      p:finish()
    end)

    it("goes back to no session when the key server removes the member", function()
      local a, c = joined("alice"), joined("carol")
      assert(test.wait_until(function() return server:stats().members == 2 end), "not two members")
      local without = {}
      for name, hex in pairs(members) do
        if name ~= "carol" then without[name] = hex end
      end
      write_acl(without)
      assert(server:reload())
      c:expect("the key server removed this member from group 'chat': [^\n]+\n")
      c:expect("session stopped\n")
      a:expect("group 'chat' has new keys: epoch %d+\n") -- the ACL dropped a member: a new key
      c:send("status")
      c:expect("\nno session\n")
      c:send("send still there?")
      c:expect("error: no session")
      write_acl(members)
      assert(server:reload())
      a:finish()
      c:finish()
    end)

    it("leaves within seconds when the shell dies, by its MQTT will", function()
      local p = joined("bob")
      assert(test.wait_until(function() return server:stats().members == 1 end), "bob did not join")
      -- SIGKILL with its input still open: no EOF, no leave; only the broker knows.
      assert(os.execute(("kill -KILL -%d"):format(p.pid)))
      -- The will (anyone may publish one) makes the key server ping the
      -- member, which leaves when no answer comes: long before the idle timeout (90 s).
      assert(test.wait_until(function() return server:stats().members == 0 end, 15), "no will arrived")
    end)
  end)

  describe("protocol = sealed", function()
    local frames = {} -- what the broker sees on the sealed topic

    local function sealed_config(name, extra)
      assert(require("sts.keyfiles").write_pair(dir .. "/" .. name))
      if not test.read_file(dir .. "/sealed-gw.pub") then
        assert(require("sts.keyfiles").write_pair(dir .. "/sealed-gw"))
      end
      local lines = { "# a sealed sender", "url = 127.0.0.1", "port = {port}", "protocol = sealed",
        "identity = " .. dir .. "/" .. name .. ".key", "gateway = " .. dir .. "/sealed-gw.pub",
        "state = " .. dir .. "/" .. name .. ".state", "pubtop = sealed/" .. name .. "/up" }
      for _, line in ipairs(extra or {}) do lines[#lines + 1] = line end
      return config("sealed-" .. name, lines)
    end

    it("sends sealed readings with sendsealed, and refuses send and sendenc", function()
      local spy = assert(sts.connect(broker:options()))
      assert(spy:subscribe("sealed/#", function(_, payload) frames[#frames + 1] = payload end, { qos = 1 }))
      local cfg = sealed_config("sealer-1", { "create = true", "pattern = X" })
      local own = sts.fingerprint(test.read_file(dir .. "/sealer-1.pub"))
      local gw = sts.fingerprint(test.read_file(dir .. "/sealed-gw.pub"))
      local p = shell_with({ "start " .. cfg }, "ready to send sealed readings on 'sealed/sealer%-1/up'")
      p:send("send in clear")
      p:expect("error: this session sends sealed readings %(sealed one%-way readings, pattern X%): use sendsealed")
      p:send("sendenc secret")
      p:expect("error: this session sends sealed readings %(.-%): use sendsealed\n.*error: this session sends")
      p:send("sendsealed")
      p:expect("error: sendsealed needs a message")
      p:send("sendsealed a sealed reading")
      p:send("sendsealed another")
      assert(test.wait_until(function() return #frames == 2 end), "the broker saw no frames")
      for _, frame in ipairs(frames) do
        assert.equal(0x08, frame:byte(2)) -- SEALED
        assert.equal(3, frame:byte(3))    -- pattern X
        assert.is_nil(frame:find("reading", 1, true) or frame:find("another", 1, true))
      end
      p:send("status")
      p:expect("topics:   nothing subscribed, publishing on 'sealed/sealer%-1/up', QoS 1\n")
      p:expect("state:    connected, counter %d+, pattern X, to the gateway " .. gw:gsub("%p", "%%%0"))
      p:expect("messages: 2 sent, 0 received, 0 rejected")
      p:send("fingerprint")
      p:expect("this side: " .. own:gsub("%p", "%%%0") .. "\ngateway:   " .. gw:gsub("%p", "%%%0"))
      p:send("help")
      p:expect("sendsealed MSG +send one sealed reading")
      p:finish()
      assert.matches("session stopped", p:output())
      spy:disconnect()
    end)

    it("keeps the counter in the state file across shells", function()
      local cfg = sealed_config("sealer-2", { "create = true" })
      local counters = {}
      for k = 1, 2 do
        local p = shell_with({ "start " .. cfg, "sendsealed reading " .. k, "status" }, "state:    [^\n]*counter %d+")
        counters[k] = tonumber(p:output():match("state:    [^\n]*counter (%d+)"))
        p:finish()
      end
      assert.is_true(counters[2] > counters[1])
    end)

    it("refuses a missing state file without create, naming the config's line", function()
      local cfg = sealed_config("sealer-3")
      local p = shell_with({ "start " .. cfg, "status" }, "\nno session\n")
      p:expect(("error: " .. cfg .. ":7: key 'state': " .. dir .. "/sealer-3.state: No such file or directory "
        .. "(a new sender sets create = true)"):gsub("%p", "%%%0"))
      assert.is_nil(test.read_file(dir .. "/sealer-3.state"))
      p:finish()
    end)

    it("is refused by sendsealed in the other kinds", function()
      local cfg = config("nosec-sealed", { "url = 127.0.0.1", "port = {port}", "sts_mode = nosec",
        "subtop = ns/in", "pubtop = ns/out" })
      local p = shell_with({ "sendsealed x", "start " .. cfg, "sendsealed x" }, "session started")
      p:expect("error: no session.*error: not a sealed session %(nosec %(no encryption%)%): use send\n")
      p:finish()
    end)
  end)

  describe("sts.legacy", function()
    it("decrypts the recorded session of the original program frame by frame", function()
      local text = test.read_file(RECORDED)
      if not text then
        pending("skipped: " .. RECORDED .. " is absent")
        return
      end
      local recorded = require("dkjson").decode(text)
      local key = unhex(recorded.aes256_key)
      local sides = {
        master = sts.legacy.new{ role = "master", mode = "cbc", key = key },
        slave = sts.legacy.new{ role = "slave", mode = "cbc", key = key },
      }
      local checked = 0
      for _, f in ipairs(recorded.frames) do
        if f.ciphertext then
          local from = sides[f.from]
          local to = sides[f.from == "master" and "slave" or "master"]
          local ct = unhex(f.ciphertext)
          local r = assert(to:receive(ct))
          if f.plaintext == "KILL:" then
            assert.equal("killed", r.event)
            assert.equal(ct, from:kill())
          else
            assert.equal("message", r.event)
            -- The original appends one space to what was typed.
            local typed = f.plaintext:match("^ENC:(.*) $")
            assert.equal(typed, r.message)
            -- Sealing what was typed on the sending side gives the recorded bytes.
            assert.equal(ct, from:seal(typed))
          end
          checked = checked + 1
        end
      end
      assert.equal(5, checked)
      assert.equal("closed", sides.master:state())
      assert.equal("closed", sides.slave:state())
    end)

    it("parses the recorded handshake frames", function()
      local text = test.read_file(RECORDED)
      if not text then
        pending("skipped: " .. RECORDED .. " is absent")
        return
      end
      local recorded = require("dkjson").decode(text)
      local master = sts.legacy.new{ role = "master", mode = "cbc" }
      local slave = sts.legacy.new{ role = "slave", mode = "cbc" }
      -- The state of the receiving side after each frame.
      local expected_state = { "wait_keyreq", "wait_keyack", "wait_keyack", "wait_keyreq", "established", "established" }
      assert.equal("INITREQ:request", master:start()[1])
      -- Each recorded frame is accepted by the side it was sent to, in order.
      for i, f in ipairs(recorded.frames) do
        if not f.handshake then break end
        local to = f.from == "master" and slave or master
        assert(to:receive(f.handshake))
        assert.equal(expected_state[i], to:state())
      end
    end)

    it("refuses bad options", function()
      assert.has_error(function() sts.legacy.new{ role = "boss", mode = "cbc" } end)
      assert.has_error(function() sts.legacy.new{ role = "master", mode = "ctr" } end)
      assert.has_error(function() sts.legacy.new{ role = "master", mode = "cbc", key = "short" } end)
      assert.has_error(function() sts.legacy.new{ role = "master", mode = "cbc", rol = "x" } end)
    end)
  end)

  describe("config files", function()
    local cases = {
      { { "url = 127.0.0.1", "", "qso = 1" }, ":3: key 'qso': unknown key" },
      { { "url = 127.0.0.1", "port = 99999" }, ":2: key 'port': expected an integer from 1 to 65535" },
      { { "# master without a cipher", "sts_mode = master", "aes = null" },
        ":3: key 'aes': sts_mode = master needs aes = ecb or cbc" },
      { { "url = 127.0.0.1" }, ": key 'sts_mode': missing" },
      { { "sts_mode = nosec", "subtop = a", "pubtop = b", "password = x" },
        ":4: key 'password': a password needs a username" },
      { { "url = x", "ip = y" }, ":2: key 'ip': same setting as 'url' on line 1" },
      { { "url = localhost", "password = \"unterminated" }, ":2: key 'password': unterminated quoted value" },
    }

    it("reports errors with the file, the line and the key", function()
      local p = spawn_shell()
      for i, case in ipairs(cases) do
        local path = config("bad-" .. i, case[1])
        p:send("start " .. path)
        p:expect("error: " .. (path .. case[2]):gsub("%p", "%%%0"))
      end
      p:send("start " .. dir .. "/no-such-config")
      p:expect("error: " .. (dir .. "/no-such-config: cannot open"):gsub("%p", "%%%0"))
      p:send("status")
      p:expect("\nno session\n")
      p:finish()
    end)

    it("are read by sts.config with their line numbers", function()
      local values, lines = assert(sts.config.parse("# c\nurl=localhost\n\nport = 1883 # here\npassword = \"a # b\"\n", "t"))
      assert.same({ url = "localhost", port = "1883", password = "a # b" }, values)
      assert.same({ url = 2, port = 4, password = 5 }, lines)
    end)

    it("ship with the project and start", function()
      for _, name in ipairs{ "nosec", "legacy-master", "legacy-slave", "secmaster", "secslave", "group-member.conf",
                             "sealed-sensor.conf" } do
        assert.is_table(Config.load("configs/" .. name).values, name) -- keys checked too
      end
    end)
  end)

  describe("on a terminal", function()
    it("edits lines at a prompt and prints messages above the line being typed", function()
      if not os.execute("command -v script >/dev/null 2>&1") then
        pending("skipped: util-linux 'script' (to make a terminal) is not installed")
        return
      end
      local cfg = config("tty", { "url = 127.0.0.1", "port = {port}", "sts_mode = nosec",
        "subtop = tty/in", "pubtop = tty/out" })
      local p = test.spawn_fed("script -qfec " .. test.quote(test.quote(test.sts_lua()) .. " --shell") .. " /dev/null", dir)
      shells[#shells + 1] = p
      p:expect("Secure Telemetry Shell") -- only said on a terminal
      p:send("start " .. cfg)
      p:expect("session started")
      p:write("half-typ")
      p:expect("> half%-typ$")
      local c = assert(sts.connect(broker:options()))
      assert(c:publish("tty/in", "news"))
      -- The typed text goes, the message takes its line, prompt and text come back.
      p:expect("\r\27%[K%[MQTT_INC%]: news\r\n> half%-typ$")
      c:disconnect()
      p:write("ed\r")
      p:expect("error: unknown command 'half%-typed'")
      p:write("\27[A\r") -- up arrow: the same line from the history
      assert(test.wait_until(function() return count(p:output(), "unknown command 'half-typed'") == 2 end), p:output())
      p:finish() -- script passes the EOF on as ^D
    end)
  end)

  describe("commands", function()
    it("refuses unknown words without running them", function()
      local marker = dir .. "/should-not-exist"
      local p = shell_with({ "touch " .. marker, "help" }, "sendenc MSG")
      p:expect("error: unknown command 'touch'")
      assert.is_nil(test.read_file(marker))
      p:finish()
    end)

    it("needs a session for send and sendenc", function()
      local p = shell_with({ "send x", "sendenc y", "stop" })
      p:expect("error: no session.*error: no session.*error: no session")
      p:finish()
    end)

    it("exits with status 0 at EOF and on exit", function()
      local p = spawn_shell()
      p:finish()
      local q = shell_with({ "exit", "help" })
      assert.equal(0, q:wait(10))
      assert.is_nil(q:output():find("start CONFIG", 1, true)) -- nothing ran after exit
    end)

    it("never shows the password", function()
      local secure = test.broker{ users = { alice = "hunter2-very-secret" } }
      local cfg = config("with-password", { "url = 127.0.0.1", "port = " .. secure.port,
        "username = alice", "password = \"hunter2-very-secret\"", "sts_mode = nosec",
        "subtop = pw/in", "pubtop = pw/out" })
      local p = shell_with({ "start " .. cfg, "status" }, "messages: ")
      assert.matches("user alice %(password set%)", p:output())
      p:finish()
      secure:stop()
      assert.is_nil(p:output():find("hunter2", 1, true))
    end)
  end)
end)
