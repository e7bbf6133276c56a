-- The university lab protocol: sts.dh and sts.fernet against OpenSSL,
-- Python's cryptography and the Fernet spec vectors; then
-- secure_mqtt_client and lab_responder as separate processes through a real
-- mosquitto, and what the responder must survive.
local sts = require "sts"
local test = require "sts.test"
local lab = require "sts.lab"

-- The RFC 3526 groups 14 and 16 as `openssl genpkey -genparam -algorithm DH
-- -pkeyopt group:modp_2048` (and modp_4096) writes them; a 2048-bit safe
-- prime of no RFC from `openssl dhparam 2048` (checked with -check), for
-- which Python writes public keys in the PKCS#3 form, as for the course's.
local FIXTURES = "spec/fixtures/"
local MODP2048 = FIXTURES .. "rfc3526-modp2048.pem"
local MODP4096 = FIXTURES .. "rfc3526-modp4096.pem"
local SAFE2048 = FIXTURES .. "safe2048.pem"
local EXAMPLE_KEY = "../shared/vectors/lab/example_public_key.pem"
local FERNET_VECTORS = "/usr/lib/python3/dist-packages/cryptography_vectors/fernet/"
-- Debian's python3 (with python3-cryptography), not whatever python3 is first on PATH.
local PYTHON = io.open("/usr/bin/python3") and "/usr/bin/python3" or "python3"
local CLIENT, RESPONDER = "scripts/secure_mqtt_client.lua", "scripts/lab_responder.lua"

local read = test.read_file

local function params(path)
  return assert(sts.dh.params(assert(read(path), path)))
end

local function shell(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  return ok
end

-- --- DER and base64, to build the public keys a peer should not send ------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64_decode(text)
  text = text:gsub("[^%w+/]", "")
  local bits = text:gsub(".", function(c)
    local v = B64:find(c, 1, true) - 1
    local s = ""
    for i = 5, 0, -1 do s = s .. ((v >> i) & 1) end
    return s
  end)
  return (bits:gsub("%d%d%d%d%d%d%d%d", function(byte) return string.char(tonumber(byte, 2)) end):gsub("[01]*$", ""))
end

local function base64_encode(data)
  local out = {}
  for i = 1, #data, 3 do
    local a, b, c = data:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    for k = 0, 3 do
      local idx = (n >> (18 - 6 * k)) & 63
      out[#out + 1] = (k <= 1 or (k == 2 and b) or (k == 3 and c)) and B64:sub(idx + 1, idx + 1) or "="
    end
  end
  return table.concat(out)
end

local function pem(der)
  local body = base64_encode(der):gsub(("."):rep(64), "%0\n"):gsub("\n$", "")
  return "-----BEGIN PUBLIC KEY-----\n" .. body .. "\n-----END PUBLIC KEY-----\n"
end

local function der_length(n)
  if n < 0x80 then return string.char(n) end
  local bytes = ""
  while n > 0 do bytes, n = string.char(n & 0xff) .. bytes, n >> 8 end
  return string.char(0x80 | #bytes) .. bytes
end

local function tlv(tag, content) return string.char(tag) .. der_length(#content) .. content end

-- A DER INTEGER of the non-negative big-endian number in bytes.
local function der_integer(bytes)
  bytes = bytes:gsub("^%z+", "")
  if bytes == "" or bytes:byte(1) >= 0x80 then bytes = "\0" .. bytes end
  return tlv(0x02, bytes)
end

-- Reads one TLV at pos: tag, content, position after it.
local function der_read(der, pos)
  local tag, len = der:byte(pos), der:byte(pos + 1)
  pos = pos + 2
  if len >= 0x80 then
    local n = len & 0x7f
    len = 0
    for i = 0, n - 1 do len = (len << 8) | der:byte(pos + i) end
    pos = pos + n
  end
  return tag, der:sub(pos, pos + len - 1), pos + len
end

-- A dhKeyAgreement SubjectPublicKeyInfo with p and g taken from a real
-- public key and y given as big-endian bytes.
local function public_key_with_y(real_pem, y)
  local _, spki = der_read(base64_decode(real_pem:match("KEY%-%-%-%-%-(.-)%-%-%-%-%-END")), 1)
  local _, algorithm = der_read(spki, 1)
  local algorithm_tlv = tlv(0x30, algorithm)
  return pem(tlv(0x30, algorithm_tlv .. tlv(0x03, "\0" .. der_integer(y))))
end

-- p's bytes (without the sign byte) of a public key.
local function prime_of(real_pem)
  local _, spki = der_read(base64_decode(real_pem:match("KEY%-%-%-%-%-(.-)%-%-%-%-%-END")), 1)
  local _, algorithm = der_read(spki, 1)
  local _, _, after_oid = der_read(algorithm, 1)
  local _, group = der_read(algorithm, after_oid)
  local _, p = der_read(group, 1)
  return (p:gsub("^%z", ""))
end

-- ---------------------------------------------------------------------------------

describe("sts.dh", function()
  local g2048, g4096

  setup(function()
    g2048, g4096 = params(MODP2048), params(MODP4096)
  end)
  teardown(test.cleanup)

  it("reads PKCS#3 parameter files of the RFC 3526 groups", function()
    assert.equal(2048, g2048:bits())
    assert.equal(4096, g4096:bits())
    assert.is_true(g2048 == params(MODP2048))
    assert.is_false(g2048 == g4096)
    assert.matches("2048 bits", tostring(g2048))
  end)

  it("refuses parameters that are not DH parameters or too small", function()
    local p, err = sts.dh.params("not a pem")
    assert.is_nil(p)
    assert.matches("DH parameters", err)
    -- A 1024-bit safe prime from `openssl dhparam 1024`: below the 2048-bit floor.
    local p1024 = "-----BEGIN DH PARAMETERS-----\n"
      .. "MIGHAoGBAKPVeuRXOMsYfEhiKq4q3Jj6hQd6OWwnBgGr9v5dN4NzJIctMgXlfPkI\n"
      .. "8qqXs/9FUUhhv/GUAo3YUP6+u0JxjpTzVmoHWxAjnd4g3sNuEaGHDrh19no1s6z4\n"
      .. "Pw45u/6SAGabsqTosU0mq3Eaweeig6RZe4ToZk5HwQG/THbytVb/AgEC\n"
      .. "-----END DH PARAMETERS-----\n"
    p, err = sts.dh.params(p1024)
    assert.is_nil(p)
    assert.matches("unusable key", err)
    assert.has_error(function() sts.dh.params() end)
  end)

  it("agrees on the same secret and lab key from both sides", function()
    local a, b = g2048:keypair(), g2048:keypair()
    assert.matches("^%-%-%-%-%-BEGIN PUBLIC KEY%-%-%-%-%-\n", a.public)
    assert.equal(a.public, a:public_pem())
    assert.not_equal(a.public, b.public)
    local secret = assert(a:secret(b.public))
    assert.equal(256, #secret)
    assert.equal(secret, b:secret(a.public))
    local key = assert(a:derive(b.public))
    assert.equal(32, #key)
    assert.equal(key, b:derive(sts.dh.public(a.public)))
    -- The lab key is HKDF-SHA256(salt 00, secret, info 00), computed here by sts.hkdf.
    assert.equal(sts.hkdf(secret, "\0", "\0", 32), key)
  end)

  it("agrees with OpenSSL on the padded secret, both key forms", function()
    if not shell("openssl version") then return pending("skipped: no openssl command") end
    local dir = test.tmpdir()
    assert(shell(string.format("openssl genpkey -paramfile %s -out %s/priv.pem", MODP2048, dir)))
    assert(shell(string.format("openssl pkey -in %s/priv.pem -pubout -out %s/pub.pem", dir, dir)))
    local ours = g2048:keypair()
    test.write_file(dir .. "/ours.pem", ours.public)
    -- OpenSSL reads our public key and pads as Python does (dh_pad:1).
    assert(shell(string.format("openssl pkeyutl -derive -inkey %s/priv.pem -peerkey %s/ours.pem -pkeyopt dh_pad:1 -out %s/secret",
      dir, dir, dir)))
    assert.equal(read(dir .. "/secret"), ours:secret(read(dir .. "/pub.pem")))
  end)

  it("interoperates with Python's cryptography (key agreement, HKDF and Fernet both ways)", function()
    if not shell(PYTHON .. " -c 'import cryptography.fernet'") then
      return pending("skipped: python3 with the cryptography package is absent")
    end
    local dir = test.tmpdir()
    -- keygen PARAMS: a key pair kept in a file, its public key printed;
    -- agree OURS TOKEN: the lab key (hex), a token for "from python", and our token decrypted.
    test.write_file(dir .. "/peer.py", [[
import base64, sys
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
state = sys.argv[1]
if sys.argv[2] == "keygen":
    params = serialization.load_pem_parameters(open(sys.argv[3], "rb").read())
    key = params.generate_private_key()
    open(state, "wb").write(key.private_bytes(serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    print(key.public_key().public_bytes(serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode(), end="")
else:
    key = serialization.load_pem_private_key(open(state, "rb").read(), None)
    ours = serialization.load_pem_public_key(open(sys.argv[3], "rb").read())
    lab_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"\0", info=b"\0").derive(key.exchange(ours))
    f = Fernet(base64.urlsafe_b64encode(lab_key))
    print(lab_key.hex())
    print(f.encrypt(b"from python").decode())
    print(f.decrypt(open(sys.argv[4], "rb").read()).decode())
]])
    local function python(...)
      local p = io.popen(table.concat({ PYTHON, dir .. "/peer.py", dir .. "/state.pem", ... }, " ") .. " 2>&1")
      local out = p:read("a")
      assert(p:close(), out)
      return out
    end
    local groups = { MODP4096 }
    if read(SAFE2048) then groups[2] = SAFE2048 end
    for _, path in ipairs(groups) do
      local ours = params(path):keypair()
      test.write_file(dir .. "/ours.pem", ours.public)
      local theirs = python("keygen", path)
      local lab_key = assert(ours:derive(theirs))
      test.write_file(dir .. "/token", sts.fernet.encrypt(lab_key, "from lua"))
      local hex, token, decrypted = python("agree", dir .. "/ours.pem", dir .. "/token"):match("^(%x+)\n(%S+)\n(.-)\n$")
      assert.equal((lab_key:gsub(".", function(c) return ("%02x"):format(c:byte()) end)), hex)
      assert.equal("from python", sts.fernet.decrypt(lab_key, token))
      assert.equal("from lua", decrypted)
    end
  end)

  it("agrees when the shared secret starts with a zero byte (padding matters)", function()
    -- About one secret in 256 starts with 0x00: search for one.
    local a = g2048:keypair()
    local b, secret
    for _ = 1, 4000 do
      b = g2048:keypair()
      secret = a:secret(b.public)
      if secret:byte(1) == 0 then break end
      b:close()
    end
    assert.equal(0, secret:byte(1), "no secret with a leading zero in 4000 tries")
    assert.equal(256, #secret)
    assert.equal(secret, b:secret(a.public))
    local key = a:derive(b.public)
    assert.equal(key, b:derive(a.public))
    assert.equal(sts.hkdf(secret, "\0", "\0", 32), key)
    -- Without the padding the key would differ: the bug the padding avoids.
    assert.not_equal(sts.hkdf((secret:gsub("^%z+", "")), "\0", "\0", 32), key)
  end)

  it("refuses peers out of range, in another group or not keys at all", function()
    local a = g2048:keypair()
    local p = prime_of(a.public)
    local p_minus_1 = p:sub(1, -2) .. string.char(p:byte(-1) - 1) -- p is odd
    local bad = {
      ["y = 0"] = public_key_with_y(a.public, "\0"),
      ["y = 1"] = public_key_with_y(a.public, "\1"),
      ["y = p - 1"] = public_key_with_y(a.public, p_minus_1),
      ["y = p"] = public_key_with_y(a.public, p),
    }
    for what, key in pairs(bad) do
      local derived, err = a:derive(key)
      assert.is_nil(derived, what)
      assert.matches("unusable key", err, 1, true)
      assert.is_nil(sts.dh.public(key), what)
    end
    -- The same construction with a good y is accepted, so the refusals are about y.
    local y = a:secret(g2048:keypair().public)
    assert.truthy(a:derive(public_key_with_y(a.public, y)))
    assert.truthy(a:derive(public_key_with_y(a.public, "\2")))

    local other, err = a:derive(g4096:keypair().public)
    assert.is_nil(other)
    assert.matches("not in this key's group", err)
    for _, garbage in ipairs({ "", "hello", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                               read(MODP2048) }) do
      local k, gerr = a:derive(garbage)
      assert.is_nil(k)
      assert.matches("^DH public key: ", gerr)
    end
    assert.has_error(function() a:derive() end)
  end)

  it("reads the course's example public key and writes it back byte for byte", function()
    local text = read(EXAMPLE_KEY)
    if not text then return pending("skipped: " .. EXAMPLE_KEY .. " is absent") end
    local peer = assert(sts.dh.public(text))
    assert.equal(4096, peer:bits())
    assert.equal(4096, peer:params():bits())
    assert.equal(text, peer:pem()) -- the PKCS#3 form Python writes
    -- A key pair in its group agrees with it; ours is in another group.
    local mine = peer:params():keypair()
    assert.equal(32, #assert(mine:derive(peer)))
    assert.is_false(peer:params() == g4096)
  end)

  it("wipes and closes keys: close, <close> and collection", function()
    local k = g2048:keypair()
    k:close()
    k:close()
    assert.matches("closed", tostring(k))
    assert.has_error(function() k:derive(g2048:keypair().public) end, "the key is closed")
    assert.has_error(function() return k.public end, "the key is closed")
    local escaped
    do
      local scoped <close> = g2048:keypair()
      escaped = scoped
    end
    assert.has_error(function() escaped:secret(g2048:keypair().public) end, "the key is closed")
    for _ = 1, 20 do g2048:keypair() end
    collectgarbage()
    collectgarbage()
  end)
end)

-- ---------------------------------------------------------------------------------

-- "1985-10-26T01:20:00-07:00" -> seconds since the epoch.
local function rfc3339(text)
  local y, mo, d, h, mi, s, sign, oh, om = text:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)([+-])(%d+):(%d+)$")
  local function days_from_civil(yy, mm, dd) -- Howard Hinnant's algorithm
    yy = mm <= 2 and yy - 1 or yy
    local era = yy // 400
    local yoe = yy - era * 400
    local doy = (153 * (mm + (mm > 2 and -3 or 9)) + 2) // 5 + dd - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
  end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + h * 3600 + mi * 60 + s
  local offset = (oh * 3600 + om * 60) * (sign == "+" and 1 or -1)
  return math.tointeger(t - offset)
end

describe("sts.fernet", function()
  local key = string.rep("k", 32)

  local function vectors(name)
    local text = read(FERNET_VECTORS .. name)
    if not text then return nil end
    return require("dkjson").decode(text)
  end

  it("makes the spec's tokens (generate.json)", function()
    local list = vectors("generate.json")
    if not list then return pending("skipped: " .. FERNET_VECTORS .. " is absent") end
    for _, v in ipairs(list) do
      local iv = string.char(table.unpack(v.iv))
      assert.equal(v.token, sts.fernet.encrypt(v.secret, v.src, { time = rfc3339(v.now), iv = iv }))
    end
    assert.equal(1, #list)
  end)

  it("reads the spec's tokens (verify.json) and refuses its invalid ones (invalid.json)", function()
    local good, bad = vectors("verify.json"), vectors("invalid.json")
    if not good then return pending("skipped: " .. FERNET_VECTORS .. " is absent") end
    for _, v in ipairs(good) do
      assert.equal(v.src, sts.fernet.decrypt(v.secret, v.token, { ttl = v.ttl_sec, now = rfc3339(v.now) }))
    end
    for _, v in ipairs(bad) do
      local text, err = sts.fernet.decrypt(v.secret, v.token, { ttl = v.ttl_sec, now = rfc3339(v.now) })
      assert.is_nil(text, v.desc)
      assert.equal(v.desc == "expired TTL" and "expired" or "invalid token", err:match("^[%w ]+"), v.desc)
    end
    assert.equal(8, #bad)
  end)

  it("round-trips any bytes and takes the key raw or as Python's base64url text", function()
    local blob = {}
    for i = 0, 255 do blob[#blob + 1] = string.char(i) end
    blob = table.concat(blob)
    for _, text in ipairs({ "", "x", string.rep("a", 16), blob }) do
      local token = sts.fernet.encrypt(key, text)
      assert.matches("^gAAAAA[%w_%-]+=*$", token)
      assert.equal(text, sts.fernet.decrypt(key, token))
    end
    local text_key = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=" -- base64url of 32 'k'
    assert.equal("same", sts.fernet.decrypt(text_key, sts.fernet.encrypt(key, "same")))
  end)

  it("refuses tampered tokens and wrong keys", function()
    local token = sts.fernet.encrypt(key, "attack at dawn")
    for _, at in ipairs({ 1, 12, 30, 60, #token - 5 }) do
      local c = token:sub(at, at)
      local tampered = token:sub(1, at - 1) .. (c == "A" and "B" or "A") .. token:sub(at + 1)
      local text, err = sts.fernet.decrypt(key, tampered)
      assert.is_nil(text)
      assert.matches("^invalid token", err)
    end
    local text, err = sts.fernet.decrypt(string.rep("j", 32), token)
    assert.is_nil(text)
    assert.equal("invalid token: authentication failed", err)
    assert.is_nil((sts.fernet.decrypt(key, token:sub(1, 40))))
    assert.is_nil((sts.fernet.decrypt(key, "")))
  end)

  it("refuses expired tokens, and those from too far in the future, only with a ttl", function()
    local now = os.time()
    local old = sts.fernet.encrypt(key, "old", { time = now - 100 })
    local text, err = sts.fernet.decrypt(key, old, { ttl = 60 })
    assert.is_nil(text)
    assert.equal("expired", err)
    assert.equal("old", sts.fernet.decrypt(key, old, { ttl = 101 }))
    assert.equal("old", sts.fernet.decrypt(key, old))
    assert.is_nil((sts.fernet.decrypt(key, old, { ttl = 60, now = now })))
    local future = sts.fernet.encrypt(key, "future", { time = now + 120 })
    text, err = sts.fernet.decrypt(key, future, { ttl = 3600 })
    assert.is_nil(text)
    assert.matches("^invalid token", err)
    assert.equal("future", sts.fernet.decrypt(key, future, { ttl = 3600, now = now + 61 }))
  end)

  it("refuses misuse with errors that name the argument or option", function()
    assert.has_error(function() sts.fernet.encrypt("short", "x") end)
    assert.has_error(function() sts.fernet.encrypt(key, "x", { tme = 1 }) end, "sts.fernet.encrypt: unknown option 'tme'")
    assert.has_error(function() sts.fernet.encrypt(key, "x", { iv = "short" }) end, "option 'iv' must be a 16-byte string")
    assert.has_error(function() sts.fernet.encrypt(key, "x", { time = -5 }) end)
    assert.has_error(function() sts.fernet.decrypt(key, "x", { tll = 5 }) end, "sts.fernet.decrypt: unknown option 'tll'")
    assert.has_error(function() sts.fernet.decrypt(key, "x", { ttl = -1 }) end)
    assert.has_error(function() sts.fernet.decrypt(key) end)
  end)
end)

describe("lab actions", function()
  it("transform as the course's Python responder does", function()
    local a = lab.actions
    assert.equal("HELLO, WORLD 42", a.uppercase("Hello, World 42"))
    assert.equal("hello, world 42", a.lowercase("Hello, World 42"))
    -- Python: "they're bill's 3rd friends from the UK".title()
    assert.equal("They'Re Bill'S 3Rd Friends From The Uk", a["title-case"]("they're bill's 3rd friends from the UK"))
    assert.equal("Naïve Café", a["title-case"]("naïve café"))
    assert.equal("dlrow olleh", a.reverse("hello world"))
    assert.equal("éfac", a.reverse("café"))
    local shuffled = a.shuffle("abcdefghij")
    local sorted = {}
    for c in shuffled:gmatch(".") do sorted[#sorted + 1] = c end
    table.sort(sorted)
    assert.equal("abcdefghij", table.concat(sorted))
    assert.same(lab.action_names, { "uppercase", "lowercase", "title-case", "reverse", "shuffle" })
    for _, name in ipairs(lab.action_names) do assert.is_function(a[name]) end
  end)
end)

-- ---------------------------------------------------------------------------------

describe("secure_mqtt_client and lab_responder through mosquitto", function()
  local broker, responder, raw
  local ROOT = io.popen("pwd"):read("l")

  -- Runs the client as its own process; returns its exit code and output
  -- (stdout and stderr together, so a clean run shows nothing but the answer).
  local function client(args, b)
    b = b or broker
    local full = { "--host", b.host, "-p", tostring(b.port) }
    for _, a in ipairs(args) do full[#full + 1] = a end
    if not args.no_dhparam then
      full[#full + 1] = "--dhparam"
      full[#full + 1] = args.dhparam or MODP2048
    end
    local p = test.spawn_script(CLIENT, table.unpack(full))
    local code = p:wait(30)
    return code, p:output()
  end

  -- A key exchange by hand: returns the Fernet key.
  local function exchange(netid, group)
    local key = (group or params(MODP2048)):keypair()
    local got = sts.future()
    local topic = netid .. "/key-exchange/response"
    assert(raw:subscribe(topic, function(_, pem) got:set(pem) end, { qos = 1 }))
    assert(raw:publish(netid .. "/key-exchange/request", key.public, { qos = 1 }))
    local pem = assert(got:wait(5))
    raw:unsubscribe(topic)
    return assert(key:derive(pem))
  end

  -- Publishes payload as a request; returns the response, or nil after `wait` seconds.
  local function ask(netid, action, payload, wait)
    local got = sts.future()
    local topic = netid .. "/" .. action .. "/response"
    assert(raw:subscribe(topic, function(_, p) got:set(p) end, { qos = 1 }))
    assert(raw:publish(netid .. "/" .. action .. "/request", payload, { qos = 1 }))
    local answer = got:wait(wait or 5)
    raw:unsubscribe(topic)
    return answer
  end

  setup(function()
    broker = test.broker()
    responder = test.spawn_script(RESPONDER, "--host", broker.host, "-p", tostring(broker.port), "--dhparam", MODP2048)
    assert(responder:wait_for("serving"), responder:output())
    raw = assert(sts.connect(broker:options()))
  end)
  teardown(function()
    raw:disconnect()
    responder:kill()
    broker:stop()
    test.cleanup()
  end)

  describe("the client", function()
    local message = "Hello they're 3rd"
    local expected = {
      uppercase = "HELLO THEY'RE 3RD",
      lowercase = "hello they're 3rd",
      ["title-case"] = "Hello They'Re 3Rd",
      reverse = "dr3 er'yeht olleH",
    }

    for action, answer in pairs(expected) do
      it("gets " .. action .. " answered and prints only the answer", function()
        local code, out = client({ "ab123", action, message })
        assert.equal(0, code, out)
        assert.equal(answer .. "\n", out)
      end)
    end

    it("gets shuffle answered: a permutation of the message", function()
      local code, out = client({ "ab123", "shuffle", message })
      assert.equal(0, code, out)
      local function sorted(s)
        local t = {}
        for c in s:gmatch(".") do t[#t + 1] = c end
        table.sort(t)
        return table.concat(t)
      end
      assert.equal(sorted(message), sorted(out:sub(1, -2)))
    end)

    it("works with 4096-bit parameters and with a non-RFC safe prime the responder has no pool for", function()
      for _, path in ipairs({ MODP4096, SAFE2048 }) do
        local code, out = client({ "cd456", "uppercase", "four thousand", dhparam = path })
        assert.equal(0, code, out)
        assert.equal("FOUR THOUSAND\n", out)
      end
    end)

    it("reads ./dhparam4096.pem when --dhparam is not given", function()
      local dir = test.tmpdir()
      test.write_file(dir .. "/dhparam4096.pem", read(MODP2048))
      local p = test.spawn(string.format("cd %s && %s %s/%s ab123 lowercase DEFAULT --host %s -p %d",
        test.quote(dir), test.quote(test.sts_lua()), ROOT, CLIENT, broker.host, broker.port))
      assert.equal(0, p:wait(30), p:output())
      assert.equal("default\n", p:output())
    end)

    it("exits 2 on a bad command line", function()
      for _, args in ipairs({
        { "ab123", "frobnicate", "x" },
        { "ab123", "uppercase" },
        { "a/b", "uppercase", "x" },
        { "ab123", "uppercase", "x", "--bogus" },
        { "ab123", "uppercase", "x", "--timeout", "0" },
      }) do
        local code, out = client(args)
        assert.equal(2, code, table.concat(args, " ") .. ": " .. out)
        assert.truthy(#out > 0)
      end
      local _, out = client({ "ab123", "frobnicate", "x" })
      assert.matches("unknown action 'frobnicate'", out)
    end)

    it("exits 6 when the DH parameters are missing or invalid", function()
      local code, out = client({ "ab123", "uppercase", "x", dhparam = "/nonexistent/dh.pem" })
      assert.equal(6, code, out)
      assert.matches("/nonexistent/dh.pem", out)
      local dir = test.tmpdir()
      test.write_file(dir .. "/garbage.pem", "not parameters\n")
      code, out = client({ "ab123", "uppercase", "x", dhparam = dir .. "/garbage.pem" })
      assert.equal(6, code, out)
      assert.matches("DH parameters", out)
      -- Neither the default file nor --dhparam: the message says which file it looked for.
      local p = test.spawn(string.format("cd %s && %s %s/%s ab123 uppercase x --host %s -p %d",
        test.quote(dir), test.quote(test.sts_lua()), ROOT, CLIENT, broker.host, broker.port))
      assert.equal(6, p:wait(10), p:output())
      assert.matches("dhparam4096%.pem is missing and %-%-dhparam was not given", p:output())
    end)

    it("exits 3 when the broker is unreachable", function()
      local gone = test.broker()
      gone:stop()
      local code, out = client({ "ab123", "uppercase", "x" }, gone)
      assert.equal(3, code, out)
      assert.matches("cannot reach the broker", out)
    end)

    describe("with no responder or a broken one", function()
      local other, fake

      before_each(function()
        other = test.broker()
        fake = assert(sts.connect(other:options()))
      end)
      after_each(function()
        fake:disconnect()
        other:stop()
      end)

      it("exits 4 after --timeout when nobody answers", function()
        local started = sts.now()
        local code, out = client({ "ab123", "uppercase", "x", "--timeout", "1" }, other)
        assert.equal(4, code, out)
        assert.matches("no key exchange response", out)
        assert.is_true(sts.now() - started < 5)
      end)

      it("exits 5 when the responder's public key is unusable", function()
        assert(fake:subscribe("ab123/key-exchange/request", function()
          fake:publish("ab123/key-exchange/response", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", { qos = 1 })
        end, { qos = 1 }))
        local code, out = client({ "ab123", "uppercase", "x" }, other)
        assert.equal(5, code, out)
        assert.matches("key exchange failed", out)
      end)

      it("exits 5 when the response does not decrypt", function()
        local key = params(MODP2048):keypair()
        assert(fake:subscribe("ab123/key-exchange/request", function()
          fake:publish("ab123/key-exchange/response", key.public, { qos = 1 })
        end, { qos = 1 }))
        assert(fake:subscribe("ab123/uppercase/request", function()
          fake:publish("ab123/uppercase/response", sts.fernet.encrypt(string.rep("w", 32), "X"), { qos = 1 })
        end, { qos = 1 }))
        local code, out = client({ "ab123", "uppercase", "x" }, other)
        assert.equal(5, code, out)
        assert.matches("does not decrypt: invalid token", out)
      end)
    end)
  end)

  describe("the responder", function()
    it("logs and skips what it cannot serve, and keeps serving", function()
      assert.is_nil(ask("junk1", "uppercase", "no key exchanged yet", 0.5))
      assert(responder:wait_for("junk1: uppercase request before any key exchange, skipped"), responder:output())

      assert(raw:publish("junk2/key-exchange/request", "this is not a public key", { qos = 1 }))
      assert(responder:wait_for("junk2: key exchange: DH public key: parse error, skipped"), responder:output())

      local key = exchange("junk3")
      assert.is_nil(ask("junk3", "uppercase", "not a token", 0.5))
      assert(responder:wait_for("junk3: uppercase request: invalid token"), responder:output())
      assert.is_nil(ask("junk3", "frobnicate", sts.fernet.encrypt(key, "x"), 0.5))
      assert(responder:wait_for("junk3: unknown action 'frobnicate', skipped"), responder:output())
      -- A public key out of range is refused, not answered.
      local a = params(MODP2048):keypair()
      assert(raw:publish("junk4/key-exchange/request", public_key_with_y(a.public, "\1"), { qos = 1 }))
      assert(responder:wait_for("junk4: key exchange: DH public key: unusable key"), responder:output())

      assert.is_true(responder:alive())
      assert.equal("STILL HERE", sts.fernet.decrypt(key, ask("junk3", "uppercase", sts.fernet.encrypt(key, "still here"))))
      local code, out = client({ "ab123", "reverse", "abc" })
      assert.equal(0, code, out)
      assert.equal("cba\n", out)
    end)

    it("answers a key exchange once although it matches both subscriptions, and once per duplicate", function()
      local responses = {}
      assert(raw:subscribe("ovl/key-exchange/response", function(_, pem) responses[#responses + 1] = pem end, { qos = 1 }))
      local key = params(MODP2048):keypair()
      assert(raw:publish("ovl/key-exchange/request", key.public, { qos = 1 }))
      assert(raw:publish("ovl/key-exchange/request", key.public, { qos = 1 })) -- a QoS 1 duplicate
      sts.sleep(0.5)
      raw:unsubscribe("ovl/key-exchange/response")
      assert.equal(1, #responses)
      -- The catch-all handler leaves key exchanges alone rather than call them an unknown action.
      assert.is_nil(responder:output():find("unknown action 'key-exchange'", 1, true))
      local lab_key = assert(key:derive(responses[1]))
      assert.equal("ONCE", sts.fernet.decrypt(lab_key, ask("ovl", "uppercase", sts.fernet.encrypt(lab_key, "once"))))
    end)

    it("keeps one key per netid; a new key exchange replaces the old one", function()
      local first = exchange("n1")
      local other = exchange("n2")
      assert.equal("A", sts.fernet.decrypt(first, ask("n1", "uppercase", sts.fernet.encrypt(first, "a"))))
      assert.equal("b", sts.fernet.decrypt(other, ask("n2", "lowercase", sts.fernet.encrypt(other, "B"))))
      local second = exchange("n1")
      assert.not_equal(first, second)
      assert.is_nil(ask("n1", "uppercase", sts.fernet.encrypt(first, "old key"), 0.5))
      assert(responder:wait_for("n1: uppercase request: invalid token"), responder:output())
      assert.equal("NEW KEY", sts.fernet.decrypt(second, ask("n1", "uppercase", sts.fernet.encrypt(second, "new key"))))
      assert.equal("b", sts.fernet.decrypt(other, ask("n2", "lowercase", sts.fernet.encrypt(other, "B"))))
    end)

    it("answers lab.request from a script too", function()
      local text, err = lab.request(raw, { netid = "inproc", action = "title-case", message = "in process",
                                           key = params(MODP2048):keypair(), timeout = 5 })
      assert.equal("In Process", text, err)
    end)

    it("makes key pairs on demand without any parameter file", function()
      local alone = test.broker()
      local dir = test.tmpdir()
      local p = test.spawn(string.format("cd %s && %s %s/%s --host %s -p %d", test.quote(dir),
        test.quote(test.sts_lua()), ROOT, RESPONDER, alone.host, alone.port))
      assert(p:wait_for("serving"), p:output())
      assert.matches("key pairs are made on demand", p:output())
      local code, out = client({ "ab123", "uppercase", "on demand" }, alone)
      p:kill()
      alone:stop()
      assert.equal(0, code, out)
      assert.equal("ON DEMAND\n", out)
    end)

    it("exits 6 for a missing --dhparam file and 3 for an unreachable broker", function()
      local p = test.spawn_script(RESPONDER, "-p", tostring(broker.port), "--dhparam", "/nonexistent/dh.pem")
      assert.equal(6, p:wait(10), p:output())
      local gone = test.broker()
      gone:stop()
      p = test.spawn_script(RESPONDER, "--host", gone.host, "-p", tostring(gone.port), "--dhparam", MODP2048)
      assert.equal(3, p:wait(10), p:output())
    end)
  end)
end)
