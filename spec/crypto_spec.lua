-- The low-level cryptography of the sts module: sts.random, sts.hkdf,
-- sts.encrypt / sts.decrypt, and identity keys (sts.keygen, sts.public_key,
-- sts.fingerprint, sts.key and its files), checked against published vectors and against other
-- implementations (openssl, Python's cryptography) where they are installed.
local sts = require "sts"
local test = require "sts.test"

local VECTORS = "/usr/lib/python3/dist-packages/cryptography_vectors/"

local function unhex(h)
  return (h:gsub("%s", ""):gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end))
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- The output of a shell command, or nil when it fails.
local function shell(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local out = p:read("a")
  local ok = p:close()
  return ok and out or nil
end

-- Reads a vector file of the cryptography project ("KEY = value" lines, a
-- block per vector from "COUNT = n"; values in hex or "quoted"). Each field
-- is given as bytes (v.KEY) and as written (v.KEY_text). Returns nil when
-- the file is absent.
local function read_vectors(path)
  local text = test.read_file(path)
  if not text then return nil end
  local list, current = {}, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local k, v = line:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
    if k and not line:match("^#") then
      if k == "COUNT" then
        current = {}
        list[#list + 1] = current
      elseif current then
        local quoted = v:match('^"(.*)"$')
        current[k] = quoted or unhex(v)
        current[k .. "_text"] = v
      end
    end
  end
  return list
end

local function skip_note(path)
  print("skipped: " .. path .. " is absent (Debian package python3-cryptography-vectors)")
end

describe("sts.random", function()
  it("returns n bytes, different every time", function()
    assert.equal("", sts.random(0))
    assert.equal(1, #sts.random(1))
    assert.equal(1 << 20, #sts.random(1 << 20))
    assert.not_equal(sts.random(32), sts.random(32))
  end)

  it("covers every byte value (64 KiB: each value expected 256 times)", function()
    local counts = {}
    for c in sts.random(65536):gmatch(".") do counts[c] = (counts[c] or 0) + 1 end
    local n, min, max = 0, math.huge, 0
    for _, k in pairs(counts) do
      n, min, max = n + 1, math.min(min, k), math.max(max, k)
    end
    assert.equal(256, n)
    -- Binomial(65536, 1/256): mean 256, sd 16; these bounds are 8 sd out.
    assert.is_true(min > 128 and max < 384, min .. " " .. max)
  end)

  it("refuses sizes out of range", function()
    assert.has_error(function() sts.random(-1) end)
    assert.has_error(function() sts.random((1 << 20) + 1) end)
    assert.has_error(function() sts.random("many") end)
  end)
end)

describe("sts.hex and sts.unhex", function()
  it("write lowercase digits and read either case back", function()
    assert.equal("00ff61", sts.hex("\0\255a"))
    assert.equal("", sts.hex(""))
    assert.equal("\0\255a", sts.unhex("00FF61"))
    local bytes = sts.random(37)
    assert.equal(bytes, sts.unhex(sts.hex(bytes)))
  end)

  it("refuse what is not an even count of hex digits", function()
    for _, bad in ipairs { "abc", "0g", "00 ", "+1" } do
      local ok, err = sts.unhex(bad)
      assert.is_nil(ok)
      assert.equal("not hex digits", err)
    end
  end)
end)

describe("sts.hkdf", function()
  -- RFC 5869, appendix A, test cases 1 to 3 (SHA-256).
  local rfc5869 = {
    { ikm = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", salt = "000102030405060708090a0b0c",
      info = "f0f1f2f3f4f5f6f7f8f9", len = 42,
      okm = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865" },
    { ikm = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
            .. "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
      salt = "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f"
            .. "909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
      info = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
            .. "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
      len = 82,
      okm = "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09"
            .. "da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87" },
    { ikm = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", salt = "", info = "", len = 42,
      okm = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8" },
  }

  it("passes the RFC 5869 vectors (SHA-256)", function()
    for _, v in ipairs(rfc5869) do
      assert.equal(v.okm, hex(sts.hkdf(unhex(v.ikm), unhex(v.salt), unhex(v.info), v.len)))
      assert.equal(v.okm, hex(sts.hkdf(unhex(v.ikm), unhex(v.salt), unhex(v.info), v.len, "sha256")))
    end
  end)

  it("passes the cryptography project's SHA-256 vectors, 1200 bytes long included", function()
    for _, file in ipairs({ "KDF/rfc-5869-HKDF-SHA256.txt", "KDF/hkdf-generated.txt" }) do
      local vectors = read_vectors(VECTORS .. file)
      if not vectors then
        skip_note(VECTORS .. file)
      else
        assert.is_true(#vectors >= 1)
        for _, v in ipairs(vectors) do
          assert.equal("SHA-256", v.Hash_text)
          local len = tonumber(v.L_text)
          assert.equal(len, #v.OKM)
          assert.equal(hex(v.OKM), hex(sts.hkdf(v.IKM, v.salt or "", v.info or "", len)))
        end
      end
    end
  end)

  it("agrees with openssl for SHA-512", function()
    local cases = {
      { ikm = sts.random(22), salt = sts.random(13), info = sts.random(10), len = 42 },
      { ikm = sts.random(80), salt = "", info = "", len = 64 },
      { ikm = sts.random(32), salt = sts.random(64), info = "sts", len = 255 * 64 },
    }
    for _, c in ipairs(cases) do
      local cmd = string.format("openssl kdf -keylen %d -kdfopt digest:SHA512 -kdfopt hexkey:%s%s%s HKDF",
        c.len, hex(c.ikm), #c.salt > 0 and " -kdfopt hexsalt:" .. hex(c.salt) or "",
        #c.info > 0 and " -kdfopt hexinfo:" .. hex(c.info) or "")
      local out = shell(cmd)
      if not out then
        print("skipped: openssl kdf is not available")
        return
      end
      assert.equal(out:gsub("[:%s]", ""):lower(), hex(sts.hkdf(c.ikm, c.salt, c.info, c.len, "sha512")))
    end
  end)

  it("refuses lengths HKDF cannot give and unknown hashes", function()
    assert.equal(255 * 32, #sts.hkdf("k", "", "", 255 * 32))
    assert.has_error(function() sts.hkdf("k", "", "", 255 * 32 + 1) end)
    assert.has_error(function() sts.hkdf("k", "", "", 255 * 64 + 1, "sha512") end)
    assert.has_error(function() sts.hkdf("k", "", "", 0) end)
    assert.has_error(function() sts.hkdf("k", "", "", 32, "md5") end)
  end)
end)

describe("sts.encrypt and sts.decrypt", function()
  local key = sts.random(32)

  it("open an RFC 8439 ChaCha20-Poly1305 message given as nonce || ciphertext || tag", function()
    -- RFC 8439 §2.8.2.
    local k = unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
    local nonce = unhex("070000004041424344454647")
    local ad = unhex("50515253c0c1c2c3c4c5c6c7")
    local ct = unhex([[d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b
      1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de5
      76d26586cec64b6116]])
    local tag = unhex("1ae10b594f09e26a7e902ecbd0600691")
    local pt = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."
    assert.equal(pt, sts.decrypt(k, nonce .. ct .. tag, ad))
    local bad, err = sts.decrypt(k, nonce .. ct .. tag, ad .. "x")
    assert.is_nil(bad)
    assert.equal("authentication failed", err)
  end)

  it("pass the cryptography project's ChaCha20-Poly1305 vectors", function()
    local path = VECTORS .. "ciphers/ChaCha20Poly1305/boringssl.txt"
    local vectors = read_vectors(path)
    if not vectors then return skip_note(path) end
    local n = 0
    for _, v in ipairs(vectors) do
      if #v.NONCE == 12 and #v.KEY == 32 then
        n = n + 1
        assert.equal(hex(v.IN), hex(assert(sts.decrypt(v.KEY, v.NONCE .. v.CT .. v.TAG, v.AD))))
      end
    end
    assert.is_true(n >= 10, n .. " vectors")
  end)

  it("seal with a fresh random nonce: 12 + n + 16 bytes, different every time", function()
    for _, n in ipairs({ 0, 1, 64, 1000, 1 << 20 }) do
      local pt = sts.random(n)
      local a, b = sts.encrypt(key, pt), sts.encrypt(key, pt)
      assert.equal(12 + n + 16, #a)
      assert.not_equal(a:sub(1, 12), b:sub(1, 12))
      assert.equal(pt, sts.decrypt(key, a))
      assert.equal(pt, sts.decrypt(key, b))
    end
  end)

  it("seal what another implementation opens (Python's cryptography)", function()
    local pt, ad = "sealed by sts-lua \0 binary", "header"
    local sealed = sts.encrypt(key, pt, ad)
    local out = shell(string.format([[python3 -c "
import sys
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
key, sealed, ad = (bytes.fromhex(a) for a in sys.argv[1:])
print(ChaCha20Poly1305(key).decrypt(sealed[:12], sealed[12:], ad).hex())" %s %s %s]], hex(key), hex(sealed), hex(ad)))
    if not out then
      print("skipped: python3 with the cryptography package is not available")
      return
    end
    assert.equal(hex(pt), out:match("%x*"))
  end)

  it("refuse anything altered: any byte, the associated data, the key, the length", function()
    local sealed = sts.encrypt(key, "attack at dawn", "ad")
    assert.equal("attack at dawn", sts.decrypt(key, sealed, "ad"))
    for i = 1, #sealed do
      local altered = sealed:sub(1, i - 1) .. string.char(sealed:byte(i) ~ 0x01) .. sealed:sub(i + 1)
      local pt, err = sts.decrypt(key, altered, "ad")
      assert.is_nil(pt, "byte " .. i)
      assert.equal("authentication failed", err)
    end
    assert.is_nil(sts.decrypt(key, sealed))
    assert.is_nil(sts.decrypt(key, sealed, "AD"))
    assert.is_nil(sts.decrypt(sts.random(32), sealed, "ad"))
    assert.is_nil(sts.decrypt(key, sealed:sub(1, -2), "ad"))
    assert.is_nil(sts.decrypt(key, sealed .. "\0", "ad"))
    local pt, err = sts.decrypt(key, sealed:sub(1, 27))
    assert.is_nil(pt)
    assert.equal("sealed message too short", err)
    assert.equal("", sts.decrypt(key, sts.encrypt(key, "")))
  end)

  it("need a 32-byte key", function()
    assert.has_error(function() sts.encrypt(sts.random(16), "x") end)
    assert.has_error(function() sts.decrypt(sts.random(33), string.rep("\0", 40)) end)
    assert.has_error(function() sts.encrypt(nil, "x") end)
  end)
end)

describe("identity keys", function()
  local function key_text(kind, h)
    return string.format("sts-key v1 x25519-%s\n%s\n", kind, h)
  end

  it("derive the RFC 7748 public keys (§6.1)", function()
    assert.equal(key_text("public", "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"),
      sts.public_key(key_text("private", "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")))
    assert.equal(key_text("public", "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"),
      sts.public_key(key_text("private", "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")))
  end)

  it("keygen gives an sts.key and the public key text that belongs to it", function()
    local seen = {}
    for _ = 1, 50 do
      local key, public = sts.keygen()
      assert.equal("sts.key", getmetatable(key).__name)
      assert.matches("^sts%-key v1 x25519%-public\n%x+\n$", public)
      assert.equal(public, key:public())
      assert.equal(public, sts.public_key(key))
      assert.equal(sts.fingerprint(public), key:fingerprint())
      assert.is_nil(seen[public])
      seen[public] = true
    end
  end)

  it("fingerprints a public key as ssh does: SHA256: and unpadded base64 of its SHA-256", function()
    local _, public = sts.keygen()
    local fp = sts.fingerprint(public)
    assert.matches("^SHA256:[%w+/]+$", fp)
    assert.equal(50, #fp)
    local dir = test.tmpdir()
    test.write_file(dir .. "/raw", unhex(public:match("\n(%x+)")))
    test.write_file(dir .. "/k.pub", public)
    local out = shell("openssl dgst -sha256 -binary " .. test.quote(dir .. "/raw") .. " | base64")
    if out then assert.equal("SHA256:" .. out:gsub("%s", ""):gsub("=+$", ""), fp) end
    assert.equal(fp, sts.fingerprint(dir .. "/k.pub"))
    test.cleanup()
  end)

  it("refuse private keys where public ones belong, and what is not a key", function()
    local private = key_text("private", string.rep("11", 32))
    assert.has_error(function() sts.fingerprint(private) end, "fingerprint: a private key where a public key belongs")
    assert.has_error(function() sts.fingerprint(sts.keygen()) end, "fingerprint: a private key where a public key belongs")
    local fp, err = sts.fingerprint(key_text("public", "00"))
    assert.is_nil(fp)
    assert.equal("fingerprint: not a valid key text", err)
    fp, err = sts.fingerprint("/nonexistent/key.pub")
    assert.is_nil(fp)
    assert.matches("No such file", err)
    local pub
    pub, err = sts.public_key(key_text("private", string.rep("g", 64)))
    assert.is_nil(pub)
    assert.equal("public_key: not a valid key text", err)
  end)
end)

describe("sts.key", function()
  local dir
  before_each(function() dir = test.tmpdir() end)
  after_each(function() test.cleanup() end)

  local mode = test.file_mode

  local function is_link(path)
    return os.execute("test -L " .. test.quote(path)) == true
  end

  it("saves the private key as a new file of mode 0600 that loads back", function()
    local key, public = sts.keygen()
    local path = dir .. "/me.key"
    assert.is_true(key:save(path))
    assert.equal("600", mode(path))
    assert.matches("^sts%-key v1 x25519%-private\n%x+\n$", test.read_file(path))
    assert.equal(public, sts.public_key(path))
    local loaded = assert(sts.load_key(path))
    assert.equal(public, loaded:public())
    assert.equal(public, assert(sts.load_key(test.read_file(path))):public())
    -- Loose modes are refused, as for every private key file.
    os.execute("chmod 644 " .. test.quote(path))
    local none, err = sts.load_key(path)
    assert.is_nil(none)
    assert.matches("^load_key: .*me%.key: private key is accessible by others %(mode 644%)", err)
    none, err = sts.load_key(dir .. "/missing.key")
    assert.is_nil(none)
    assert.matches("No such file", err)
  end)

  it("does not overwrite an existing file unless forced", function()
    local key = sts.keygen()
    local path = dir .. "/taken.key"
    test.write_file(path, "precious\n")
    local ok, err = key:save(path)
    assert.is_nil(ok)
    assert.equal(path .. ": File exists", err)
    assert.equal("precious\n", test.read_file(path))
    assert.is_true(key:save(path, { force = true }))
    assert.equal("600", mode(path))
    assert.equal(key:public(), sts.public_key(path))
    assert.has_error(function() key:save(path, { forse = true }) end, "key:save: unknown option 'forse'")
  end)

  it("never follows a symbolic link", function()
    local key = sts.keygen()
    local target, link = dir .. "/target", dir .. "/link.key"
    test.write_file(target, "not yours\n")
    assert(os.execute("ln -s " .. test.quote(target) .. " " .. test.quote(link)))
    assert.is_nil(key:save(link))
    assert.equal("not yours\n", test.read_file(target))
    -- Forced, the link itself is replaced; its target is left alone.
    assert.is_true(key:save(link, { force = true }))
    assert.is_false(is_link(link))
    assert.equal("600", mode(link))
    assert.equal("not yours\n", test.read_file(target))
    -- A dangling link does not create its target either.
    os.remove(target)
    assert(os.execute("ln -sf " .. test.quote(target) .. " " .. test.quote(dir .. "/dangling.key")))
    assert.is_nil(key:save(dir .. "/dangling.key"))
    assert.is_nil(test.read_file(target))
  end)

  it("shows its fingerprint, never its secret", function()
    local key, public = sts.keygen()
    assert(key:save(dir .. "/k.key"))
    local secret = test.read_file(dir .. "/k.key"):match("\n(%x+)")
    assert.equal("sts.key (" .. sts.fingerprint(public) .. ")", tostring(key))
    for _, shown in ipairs({ tostring(key), key:public(), key:fingerprint() }) do
      assert.is_nil(shown:find(secret, 1, true))
    end
  end)

  it("refuses use once closed, with a clear error", function()
    local key = sts.keygen()
    key:close()
    key:close() -- closing twice is harmless
    assert.equal("sts.key (closed)", tostring(key))
    for _, use in ipairs({ key.public, key.fingerprint, function(k) return k:save(dir .. "/x.key") end }) do
      assert.has_error(function() use(key) end, "attempt to use a closed key")
    end
    assert.has_error(function() sts.public_key(key) end, "public_key: attempt to use a closed key")
    assert.is_nil(test.read_file(dir .. "/x.key"))
    local scoped
    do
      local k <close> = sts.keygen()
      scoped = k
    end
    assert.equal("sts.key (closed)", tostring(scoped))
  end)

  it("writes public key files from C: new files, never from a private key", function()
    local key, public = sts.keygen()
    local path = dir .. "/me.pub"
    assert.is_true(sts.write_public_key(path, public))
    assert.equal(public, test.read_file(path))
    assert.equal(key:fingerprint(), sts.fingerprint(path))
    local ok, err = sts.write_public_key(path, public)
    assert.is_nil(ok)
    assert.equal(path .. ": File exists", err)
    assert.is_true(sts.write_public_key(path, public, { force = true }))
    assert.has_error(function() sts.write_public_key(dir .. "/p.pub", key) end,
      "write_public_key: a private key where a public key belongs")
    ok, err = sts.write_public_key(dir .. "/p.pub", "sts-key v1 x25519-public\nzz\n")
    assert.is_nil(ok)
    assert.equal("write_public_key: not a valid key text", err)
  end)

  it("serves as a session identity", function()
    local broker = test.broker()
    local gateway, gateway_pub = sts.keygen()
    local sensor, sensor_pub = sts.keygen()
    local a, b = assert(sts.connect(broker:options())), assert(sts.connect(broker:options()))
    local responder = sts.future()
    sts.task(function()
      responder:set(sts.handshake(b, { role = "responder", pub = "key/down", sub = "key/up",
        identity = gateway, peer = sensor_pub, timeout = 5 }))
    end)
    local s = assert(sts.handshake(a, { role = "initiator", pub = "key/up", sub = "key/down",
      identity = sensor, peer = gateway_pub, timeout = 5 }))
    local r = assert(responder:wait(5))
    assert.equal(gateway:fingerprint(), s.peer)
    assert.equal(sensor:fingerprint(), r.peer)
    -- The session keeps its own copy: closing the key does not end it.
    sensor:close()
    local got
    r:on("message", function(text) got = text end)
    assert(s:send("by key"))
    assert.is_true(test.wait_until(function() return got == "by key" end, 5))
    assert.has_error(function()
      sts.handshake(a, { role = "initiator", pub = "key/up", sub = "key/down", identity = sensor, peer = gateway_pub })
    end, "identity: attempt to use a closed key")
    local closed
    r:on("close", function() closed = true end)
    s:close()
    assert.is_true(test.wait_until(function() return closed end, 5))
    a:disconnect()
    b:disconnect()
    broker:stop()
  end)
end)
