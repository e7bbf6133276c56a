-- The shell's config keys (sts.shell.config): which exist, their types and
-- every message about them, exactly. The syntax of the files is the generic
-- parser's, tested in src/proto/tests/test_config.c.
local sts = require "sts"
local test = require "sts.test"
local Config = require "sts.shell.config"

describe("the shell's config keys", function()
  local path

  setup(function() path = test.tmpdir() .. "/test" end)
  teardown(function() test.cleanup() end)

  local function load(text)
    test.write_file(path, text)
    return Config.load(path)
  end

  --- text must be refused with exactly path .. message.
  local function fails(text, message)
    local ok, err = pcall(load, text)
    assert.is_false(ok, text)
    assert.equal(path .. message, err)
  end

  it("knows no keys in sts.config itself", function()
    local values, lines = assert(sts.config.parse("qso = 1\nport = abc\n", "t"))
    assert.same({ qso = "1", port = "abc" }, values)
    assert.same({ qso = 1, port = 2 }, lines)
  end)

  it("accept the original shell's own files", function()
    local c = load("url  = localhost\nport = 1883\nusername = master\npassword = master\n"
      .. "subtop   = s2m\npubtop   = m2s\nclientid = test_master\nsts_mode = master\naes      = cbc\n")
    assert.equal("s2m", c.values.subtop)
    assert.is_nil(c.values.qos)
    c = load("mqtt_version  = 4\nip   = 127.0.0.1\nport = 1883\nqos = 0\nclean_session = 1\n"
      .. "keep_alive = 0\nis_retained = 0\nid_master = m1\nid_slave = s1\nsts_mode = slave\n")
    assert.equal("127.0.0.1", (c:broker())) -- ip is url's alias
  end)

  it("accept every key with each kind of value", function()
    load("url = h\nport = 65535\nusername = u\npassword = \"p w\"\nsubtop = s\n"
      .. "pubtop = p\nclientid = c\nsts_mode = nosec\naes = null\nmqtt_version = 5\n"
      .. "qos = 2\nclean_session = no\nkeep_alive = 65535\nis_retained = yes\n"
      .. "id_master = m\nid_slave = s\nprotocol = legacy\npattern = IK\n"
      .. "identity = keys/a.key\npeer = keys/b.pub\ntrust = keys/trust\ntls = true\n"
      .. "cafile = ca.pem\ncapath = /etc/ssl/certs\ncertfile = c.pem\nkeyfile = k.pem\n"
      .. "tls_insecure = false\ntls_version = tlsv1.3\ngroup = g\nkeyserver = ks.pub\nprefix = p/q\n")
    load("port = 1\nqos = 0\nmqtt_version = 3\nkeep_alive = 00\nsts_mode = slave\n"
      .. "aes = ecb\npattern = NN\nprotocol = sts\ntls = 0\ntls_insecure = 1\n")
    load("protocol = group\n")
  end)

  it("read booleans as true/yes/1 and false/no/0", function()
    local c = load("tls = true\nclean_session = yes\nis_retained = 1\n")
    assert.is_true(c:bool("tls") and c:bool("clean_session") and c:bool("is_retained"))
    c = load("tls = false\nclean_session = no\nis_retained = 0\n")
    assert.is_false(c:bool("tls") or c:bool("clean_session") or c:bool("is_retained"))
    assert.equal("default", c:bool("tls_insecure", "default"))
    fails("tls =\n", ":1: key 'tls': expected true/false/yes/no/1/0, got ''")
    fails("tls = on\n", ":1: key 'tls': expected true/false/yes/no/1/0, got 'on'")
    fails("tls = 10\n", ":1: key 'tls': expected true/false/yes/no/1/0, got '10'")
  end)

  it("report the file, the line and the key of a wrong key or value", function()
    fails("url = x\n\n\n\n\n\nqso = 1\n", ":7: key 'qso': unknown key")
    fails("\n\nport = abc\n", ":3: key 'port': expected an integer from 1 to 65535, got 'abc'")
    fails("port = 0\n", ":1: key 'port': expected an integer from 1 to 65535, got '0'")
    fails("port = 65536\n", ":1: key 'port': expected an integer from 1 to 65535, got '65536'")
    fails("port = 99999999999999999999\n",
      ":1: key 'port': expected an integer from 1 to 65535, got '99999999999999999999'")
    fails("port = -1\n", ":1: key 'port': expected an integer from 1 to 65535, got '-1'")
    fails("port = +80\n", ":1: key 'port': expected an integer from 1 to 65535, got '+80'")
    fails("port =\n", ":1: key 'port': expected an integer from 1 to 65535, got ''")
    fails("qos = 3\n", ":1: key 'qos': expected an integer from 0 to 2, got '3'")
    fails("mqtt_version = 2\n", ":1: key 'mqtt_version': expected an integer from 3 to 5, got '2'")
    fails("keep_alive = 1.5\n", ":1: key 'keep_alive': expected an integer from 0 to 65535, got '1.5'")
    fails("clean_session = maybe\n", ":1: key 'clean_session': expected true/false/yes/no/1/0, got 'maybe'")
    fails("tls = TRUE\n", ":1: key 'tls': expected true/false/yes/no/1/0, got 'TRUE'")
    fails("sts_mode = boss\n", ":1: key 'sts_mode': expected one of nosec|master|slave, got 'boss'")
    fails("sts_mode = nosec|master\n",
      ":1: key 'sts_mode': expected one of nosec|master|slave, got 'nosec|master'")
    fails("sts_mode = nose\n", ":1: key 'sts_mode': expected one of nosec|master|slave, got 'nose'")
    fails("aes = CBC\n", ":1: key 'aes': expected one of null|ecb|cbc, got 'CBC'")
    fails("pattern = xx\n", ":1: key 'pattern': expected one of XX|IK|NN, got 'xx'")
    fails("protocol = noise\n", ":1: key 'protocol': expected one of sts|legacy|group|sealed, got 'noise'")
    fails("tls_version = tlsv1\n", ":1: key 'tls_version': expected one of tlsv1.2|tlsv1.3, got 'tlsv1'")
    fails("url = \"\"\n", ":1: key 'url': expected a non-empty value, got ''")
    fails("subtop =\n", ":1: key 'subtop': expected a non-empty value, got ''")
    fails("url = a\nport = 1\nip = b\n", ":3: key 'ip': same setting as 'url' on line 1")
    -- The first error in the file is the one reported.
    fails("qos = 7\nqso = 1\n", ":1: key 'qos': expected an integer from 0 to 2, got '7'")
  end)

  describe("with protocol = group", function()
    local keys

    setup(function()
      keys = test.tmpdir()
      assert(require("sts.keyfiles").write_pair(keys .. "/member"))
      assert(require("sts.keyfiles").write_pair(keys .. "/ks"))
    end)

    local function member(extra)
      return "protocol = group\ngroup = plant.line-2_a\nidentity = " .. keys .. "/member.key\n"
        .. "keyserver = " .. keys .. "/ks.pub\n" .. (extra or "")
    end

    --- text loads, but what a group session asks of it is refused with path .. message.
    local function refused(text, message)
      local c = load(text)
      local ok, err = pcall(function()
        assert.equal("group", c:kind())
        c:group_options()
      end)
      assert.is_false(ok, text)
      assert.equal(path .. message, err)
    end

    it("gives sts.group.join its options and the two fingerprints", function()
      local c = load(member("prefix = plant/groups\nqos = 0\nurl = 127.0.0.1\nport = 1884\n"
        .. "clientid = sensor-7\nusername = u\npassword = p\n"))
      assert.equal("group", c:kind())
      local o, own, ks = c:group_options()
      assert.same({ group = "plant.line-2_a", identity = keys .. "/member.key", keyserver = keys .. "/ks.pub",
                    prefix = "plant/groups", qos = 0 }, o)
      assert.equal(sts.fingerprint(sts.public_key(keys .. "/member.key")), own)
      assert.equal(sts.fingerprint(test.read_file(keys .. "/ks.pub")), ks)
      assert.are_not.equal(own, ks)
      local co = c:connect_options()
      assert.same({ "127.0.0.1", 1884, "sensor-7", "u", "p" }, { co.host, co.port, co.client_id, co.username, co.password })
      -- Without prefix and qos: sts.group's defaults.
      o = load(member()):group_options()
      assert.is_nil(o.prefix)
      assert.is_nil(o.qos)
    end)

    it("checks a group name as sts.group does", function()
      load(member():gsub("plant.line%-2_a", ("g"):rep(64)))
      fails("group = \n", ":1: key 'group': expected 1 to 64 of A-Z a-z 0-9 _ . -, got ''")
      fails("group = a/b\n", ":1: key 'group': expected 1 to 64 of A-Z a-z 0-9 _ . -, got 'a/b'")
      fails("group = a b\n", ":1: key 'group': expected 1 to 64 of A-Z a-z 0-9 _ . -, got 'a b'")
      fails("group = " .. ("g"):rep(65) .. "\n",
        ":1: key 'group': expected 1 to 64 of A-Z a-z 0-9 _ . -, got '" .. ("g"):rep(40) .. "...'")
      fails("keyserver =\n", ":1: key 'keyserver': expected a non-empty value, got ''")
      fails("prefix =\n", ":1: key 'prefix': expected a non-empty value, got ''")
      fails("protocol = groups\n", ":1: key 'protocol': expected one of sts|legacy|group|sealed, got 'groups'")
    end)

    it("names a missing key, and the line of one it cannot use", function()
      refused("protocol = group\nidentity = x\nkeyserver = y\n",
        ": key 'group': missing: protocol = group needs the group's name")
      refused("protocol = group\ngroup = g\nkeyserver = y\n",
        ": key 'identity': missing: protocol = group needs this member's private key file")
      refused("protocol = group\ngroup = g\nidentity = " .. keys .. "/member.key\n",
        ": key 'keyserver': missing: protocol = group needs the key server's public key file")
      refused(member():gsub("member%.key", "absent.key"),
        ":3: key 'identity': " .. keys .. "/absent.key: No such file or directory")
      refused(member():gsub("ks%.pub", "absent.pub"),
        ":4: key 'keyserver': " .. keys .. "/absent.pub: No such file or directory")
    end)

    it("refuses the keys of the other kinds, the first in the file", function()
      for _, key in ipairs { "sts_mode = master", "aes = cbc", "pattern = XX", "peer = p.pub", "trust = t",
                             "subtop = in", "pubtop = out" } do
        refused(member("url = localhost\n" .. key .. "\n"),
          ":6: key '" .. key:match("^[%w_]+") .. "': not used with protocol = group: remove it")
      end
      refused("sts_mode = nosec\naes = null\n" .. member(),
        ":1: key 'sts_mode': not used with protocol = group: remove it")
    end)

    it("are refused in the other kinds", function()
      for _, key in ipairs { "group = g", "keyserver = ks.pub", "prefix = p" } do
        for _, kind in ipairs { "sts_mode = nosec\n", "sts_mode = master\naes = cbc\n",
                                "protocol = sts\nsts_mode = master\nidentity = a.key\n" } do
          local c = load(kind .. key .. "\n")
          local ok, err = pcall(c.kind, c)
          assert.is_false(ok)
          assert.equal(("%s:%d: key '%s': only used with protocol = group"):format(path,
            select(2, kind:gsub("\n", "")) + 1, key:match("^[%w_]+")), err)
        end
      end
      local c = load("sts_mode = nosec\nidentity = a.key\n")
      local ok, err = pcall(c.kind, c)
      assert.is_false(ok)
      assert.equal(path .. ":2: key 'identity': only used with protocol = sts, group or sealed", err)
    end)
  end)

  describe("with protocol = sealed", function()
    local keys

    setup(function()
      keys = test.tmpdir()
      assert(require("sts.keyfiles").write_pair(keys .. "/sensor"))
      assert(require("sts.keyfiles").write_pair(keys .. "/gateway"))
      test.write_file(keys .. "/sensor.state", "") -- only its existence is checked here
    end)

    local function sender(extra)
      return "protocol = sealed\nidentity = " .. keys .. "/sensor.key\ngateway = " .. keys .. "/gateway.pub\n"
        .. "state = " .. keys .. "/sensor.state\npubtop = plant/sensor-7/up\n" .. (extra or "")
    end

    --- text loads, but what a sealed session asks of it is refused with path .. message.
    local function refused(text, message)
      local c = load(text)
      local ok, err = pcall(function()
        assert.equal("sealed", c:kind())
        c:sealed_options()
      end)
      assert.is_false(ok, text)
      assert.equal(path .. message, err)
    end

    it("gives sts.sealer its options, the topic and the two fingerprints", function()
      local c = load(sender("pattern = X\ncreate = yes\nqos = 2\nurl = 127.0.0.1\nport = 1884\nclientid = sensor-7\n"))
      assert.equal("sealed", c:kind())
      local o, topic, own, gw = c:sealed_options()
      assert.same({ identity = keys .. "/sensor.key", peer = keys .. "/gateway.pub", pattern = "X",
                    state = keys .. "/sensor.state", create = true }, o)
      assert.equal("plant/sensor-7/up", topic)
      assert.equal(sts.fingerprint(sts.public_key(keys .. "/sensor.key")), own)
      assert.equal(sts.fingerprint(test.read_file(keys .. "/gateway.pub")), gw)
      assert.are_not.equal(own, gw)
      local co = c:connect_options()
      assert.same({ "127.0.0.1", 1884, "sensor-7" }, { co.host, co.port, co.client_id })
      -- Pattern K and no state file made unless asked.
      o = load(sender()):sealed_options()
      assert.equal("K", o.pattern)
      assert.is_false(o.create)
      -- Pattern N: no identity, no fingerprint of its own.
      o, topic, own = load(sender():gsub("identity = [^\n]*\n", "") .. "pattern = N\n"):sealed_options()
      assert.same({ peer = keys .. "/gateway.pub", pattern = "N", state = keys .. "/sensor.state", create = false }, o)
      assert.is_nil(own)
    end)

    it("takes the one-way patterns K, X and N, and only with protocol = sealed", function()
      fails("protocol = sealed\npattern = XX\n", ":2: key 'pattern': expected one of K|X|N, got 'XX'")
      fails("pattern = k\nprotocol = sealed\n", ":1: key 'pattern': expected one of K|X|N, got 'k'")
      fails("protocol = sts\npattern = K\n", ":2: key 'pattern': expected one of XX|IK|NN, got 'K'")
      fails("pattern = X\n", ":1: key 'pattern': expected one of XX|IK|NN, got 'X'")
      fails("protocol = sealed\ncreate = maybe\n", ":2: key 'create': expected true/false/yes/no/1/0, got 'maybe'")
      fails("gateway =\n", ":1: key 'gateway': expected a non-empty value, got ''")
      fails("state =\n", ":1: key 'state': expected a non-empty value, got ''")
    end)

    it("names a missing key, and the line of one it cannot use", function()
      refused(sender():gsub("identity = [^\n]*\n", ""),
        ": key 'identity': missing: protocol = sealed needs this sender's private key file (or pattern = N)")
      refused(sender():gsub("gateway = [^\n]*\n", ""),
        ": key 'gateway': missing: protocol = sealed needs the gateway's public key file")
      refused(sender():gsub("state = [^\n]*\n", ""),
        ": key 'state': missing: protocol = sealed needs a file to keep the reading counter in")
      refused(sender():gsub("pubtop = [^\n]*\n", ""),
        ": key 'pubtop': missing: protocol = sealed needs the topic the readings go to")
      refused(sender():gsub("sensor%.key", "absent.key"),
        ":2: key 'identity': " .. keys .. "/absent.key: No such file or directory")
      refused(sender():gsub("gateway%.pub", "absent.pub"),
        ":3: key 'gateway': " .. keys .. "/absent.pub: No such file or directory")
      refused(sender("pattern = N\n"), ":2: key 'identity': pattern = N sends no identity: remove it")
      refused(sender():gsub("sensor%.state", "absent.state"),
        ":4: key 'state': " .. keys .. "/absent.state: No such file or directory (a new sender sets create = true)")
      load(sender("create = true\n"):gsub("sensor%.state", "absent.state")):sealed_options()
    end)

    it("refuses the keys of the other kinds, the first in the file", function()
      for _, key in ipairs { "sts_mode = master", "aes = cbc", "peer = p.pub", "trust = t", "subtop = in",
                             "group = g", "keyserver = ks.pub", "prefix = p" } do
        refused(sender("url = localhost\n" .. key .. "\n"),
          ":7: key '" .. key:match("^[%w_]+") .. "': not used with protocol = sealed: remove it")
      end
    end)

    it("are refused in the other kinds", function()
      for _, key in ipairs { "gateway = g.pub", "state = s", "create = true" } do
        for _, kind in ipairs { "sts_mode = nosec\n", "sts_mode = master\naes = cbc\n",
                                "protocol = sts\nsts_mode = master\nidentity = a.key\n" } do
          local c = load(kind .. key .. "\n")
          local ok, err = pcall(c.kind, c)
          assert.is_false(ok)
          assert.equal(("%s:%d: key '%s': only used with protocol = sealed"):format(path,
            select(2, kind:gsub("\n", "")) + 1, key:match("^[%w_]+")), err)
        end
        local c = load("protocol = group\n" .. key .. "\n")
        local ok, err = pcall(c.kind, c)
        assert.is_false(ok)
        assert.equal(("%s:2: key '%s': not used with protocol = group: remove it"):format(path,
          key:match("^[%w_]+")), err)
      end
    end)
  end)

  it("quote values back shortened and printable", function()
    fails("qos = \"0123456789012345678901234567890123456789 and more\"\n",
      ":1: key 'qos': expected an integer from 0 to 2, got '0123456789012345678901234567890123456789...'")
    fails("qos = \"\t1\"\n", ":1: key 'qos': expected an integer from 0 to 2, got '?1'")
    fails("qos = \"\xc3\xa9\"\n", ":1: key 'qos': expected an integer from 0 to 2, got '??'")
  end)
end)
