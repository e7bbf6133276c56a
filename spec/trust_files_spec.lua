-- Trust and key files that must not be used, refused through every part of
-- the Lua API that reads them (sts.handshake, sts.listen, sts.listen_sealed,
-- sts.check_trust, key options), each with an error naming the file and why,
-- and never waiting: a FIFO with no writer is refused at once.
local sts = require "sts"
local test = require "sts.test"
local keyfiles = require "sts.keyfiles"

local function plain(s)
  return (s:gsub("%p", "%%%0"))
end

local function is_root()
  local p = io.popen("id -u")
  local uid = p:read("l")
  p:close()
  return uid == "0"
end

describe("trust and key files", function()
  local broker, dir, c, me, peer

  setup(function()
    broker = test.broker()
    dir = test.tmpdir()
    c = assert(sts.connect(broker:options()))
    assert(keyfiles.write_pair(dir .. "/me"))
    assert(keyfiles.write_pair(dir .. "/peer"))
    me = { key = dir .. "/me.key", pub = dir .. "/me.pub" }
    peer = { pub = dir .. "/peer.pub", hex = test.read_file(dir .. "/peer.pub"):match("\n(%x+)") }
  end)
  teardown(function()
    c:disconnect()
    broker:stop()
    test.cleanup()
  end)

  --- A file in dir with text and mode; returns its path.
  local function file(name, text, mode)
    local path = dir .. "/" .. name
    os.remove(path)
    test.write_file(path, text, mode or "644")
    return path
  end

  local function fifo(name)
    local path = dir .. "/" .. name
    os.remove(path)
    assert(os.execute("mkfifo " .. test.quote(path)))
    return path
  end

  -- The trust options that read a file, each as a function of the path that
  -- returns what the call returned. None may wait on the file.
  local readers = {
    ["sts.handshake"] = function(path)
      return sts.handshake(c, { role = "initiator", pub = "t/up", sub = "t/down", identity = me.key,
                                trust = path, timeout = 1 })
    end,
    ["sts.listen"] = function(path)
      return sts.listen(c, { pub = "l/+/down", sub = "l/+/up", identity = me.key, trust = path }, function() end)
    end,
    ["sts.listen_sealed"] = function(path)
      return sts.listen_sealed(c, { sub = "s/+/up", identity = me.key, trust = path }, function() end)
    end,
    ["sts.check_trust"] = function(path) return sts.check_trust(path) end,
  }

  --- Every reader refuses path with "trust: <path>..." and why, promptly.
  local function refused_everywhere(path, why)
    for name, read in pairs(readers) do
      local started = sts.now()
      local ok, err = read(path)
      assert.is_nil(ok, name .. " accepted " .. path)
      assert.matches("trust: " .. plain(path) .. ": " .. plain(why), err, 1)
      assert.is_true(sts.now() - started < 0.5, name .. " took " .. (sts.now() - started) .. " s")
    end
  end

  describe("a trust file", function()
    it("is accepted as a regular file with a key, through each reader", function()
      local path = file("good.trust", "# peers\n" .. peer.hex .. " peer\n")
      assert.equal(1, sts.check_trust(path))
      local li = assert(sts.listen(c, { pub = "g/+/down", sub = "g/+/up", identity = me.key, trust = path },
        function() end))
      li:close()
      local sl = assert(sts.listen_sealed(c, { sub = "gs/+/up", identity = me.key, trust = path }, function() end))
      sl:close()
    end)

    it("is refused when it is a directory", function()
      refused_everywhere(dir, "not a regular file (a directory)")
    end)

    it("is refused at once when it is a FIFO (nobody writes it)", function()
      refused_everywhere(fifo("pipe.trust"), "not a regular file (a FIFO)")
    end)

    it("is refused when it is a device", function()
      refused_everywhere("/dev/zero", "not a regular file (a device)")
      refused_everywhere("/dev/null", "not a regular file (a device)")
    end)

    it("is refused when empty", function()
      refused_everywhere(file("empty.trust", ""), "empty")
    end)

    it("is refused when it has only comments, blank lines and .pub headers", function()
      local path = file("comments.trust", "# nobody yet\n\n   \nsts-key v1 x25519-public\n# " .. peer.hex .. "\n")
      refused_everywhere(path, "no keys, only comments and blank lines (a trust file lists at least one key)")
    end)

    it("is refused when everyone may write it, and accepted once they may not", function()
      local path = file("open.trust", peer.hex .. " peer\n", "666")
      refused_everywhere(path, "writable by everyone (mode 666), so anyone could put a key in it; chmod o-w it")
      assert(os.execute("chmod 664 " .. test.quote(path)))
      assert.equal(1, sts.check_trust(path))
    end)

    it("is refused when larger than 32 MiB, unread", function()
      local path = dir .. "/huge.trust"
      assert(os.execute("truncate -s 33554433 " .. test.quote(path)))
      refused_everywhere(path, "larger than 33554432 bytes")
      os.remove(path)
    end)

    it("is refused when missing, naming it", function()
      local path = dir .. "/absent.trust"
      for name, read in pairs(readers) do
        local ok, err = read(path)
        assert.is_nil(ok, name)
        assert.matches("trust: .*" .. plain(path) .. ": No such file or directory", err)
      end
    end)
  end)

  describe("a private key file", function()
    --- sts.load_key, sts.public_key and a handshake's identity all refuse path with why.
    local function refused_key(path, why)
      local pattern = plain(path) .. ": " .. plain(why)
      local k, err = sts.load_key(path)
      assert.is_nil(k)
      assert.matches("^load_key: " .. pattern, err)
      local pub, perr = sts.public_key(path)
      assert.is_nil(pub)
      assert.matches("^public_key: " .. pattern, perr)
      local s, herr = sts.handshake(c, { role = "initiator", pub = "k/up", sub = "k/down", identity = path,
                                         peer = me.pub, timeout = 1 })
      assert.is_nil(s)
      assert.matches("identity: " .. pattern, herr)
    end

    it("is refused when it is a directory, a FIFO or a device", function()
      refused_key(dir, "not a regular file (a directory)")
      refused_key(fifo("pipe.key"), "not a regular file (a FIFO)")
      refused_key("/dev/zero", "not a regular file (a device)")
    end)

    it("is refused when empty or over 4 KiB", function()
      refused_key(file("empty.key", "", "600"), "empty")
      refused_key(file("big.key", ("\n"):rep(4097), "600"), "larger than 4096 bytes")
    end)

    it("is refused when group or others may read it", function()
      local path = file("loose.key", test.read_file(me.key), "640")
      refused_key(path, "private key is accessible by others (mode 640); chmod 600 it")
    end)

    it("is refused when another user owns it, even at mode 600", function()
      local path
      if is_root() then
        path = file("theirs.key", test.read_file(me.key), "600")
        assert(os.execute("chown 65534 " .. test.quote(path)))
        refused_key(path, "private key is owned by uid 65534, not by this user (uid 0); chown it")
        assert(os.execute("chown 0 " .. test.quote(path)))
        assert(sts.load_key(path))
      else
        -- Not root: a file of root's that anyone may read stands in for one.
        refused_key("/etc/passwd", "private key is owned by uid 0, not by this user")
      end
    end)
  end)

  describe("keygen", function()
    it("keeps whatever is at either name, a FIFO too, without waiting on it", function()
      local name = dir .. "/made"
      fifo("made.key")
      local started = sts.now()
      local fp, err = keyfiles.write_pair(name)
      assert.is_nil(fp)
      assert.equal(name .. ".key exists", err)
      assert.is_true(sts.now() - started < 0.5)
      assert.is_nil(test.read_file(name .. ".pub"))
      os.remove(name .. ".key")
      assert(keyfiles.write_pair(name))
      assert.equal("600", test.file_mode(name .. ".key"))
    end)
  end)

  describe("a public key file", function()
    it("is refused as a pinned peer when everyone may write it", function()
      local path = file("swappable.pub", test.read_file(peer.pub), "646")
      local s, err = sts.handshake(c, { role = "initiator", pub = "p/up", sub = "p/down", identity = me.key,
                                        peer = path, timeout = 1 })
      assert.is_nil(s)
      assert.matches("peer: " .. plain(path) .. ": writable by everyone %(mode 646%)", err)
      local fp, ferr = sts.fingerprint(path)
      assert.is_nil(fp)
      assert.matches(plain(path) .. ": writable by everyone", ferr)
      assert(os.execute("chmod 644 " .. test.quote(path)))
      assert.equal(sts.fingerprint(peer.pub), sts.fingerprint(path))
    end)

    it("is refused when it is a FIFO or empty", function()
      for path, why in pairs { [fifo("pipe.pub")] = "not a regular file (a FIFO)",
                               [file("empty.pub", "")] = "empty" } do
        local s, err = sts.handshake(c, { role = "initiator", pub = "p/up", sub = "p/down", identity = me.key,
                                          peer = path, timeout = 1 })
        assert.is_nil(s)
        assert.matches("peer: " .. plain(path) .. ": " .. plain(why), err)
      end
    end)
  end)
end)
