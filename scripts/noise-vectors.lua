-- Runs Noise test vectors in the cacophony JSON format through sts.noise:
--   sts-lua scripts/noise-vectors.lua FILE
-- Every handshake and transport ciphertext is checked byte for byte, and the
-- handshake hash; suites we do not implement are skipped. Failures are
-- printed with the vector's name; the last line is "N passed, N failed,
-- N skipped", and the exit status is non-zero if any failed.
local sts = require "sts"
local json = require "dkjson"

local path = arg[1]
if not path then
  io.stderr:write("usage: noise-vectors.lua FILE\n")
  os.exit(2)
end

local function read_vectors(file)
  local f = assert(io.open(file, "rb"))
  local text = f:read("a")
  f:close()
  local doc, _, err = json.decode(text)
  if not doc then error(file .. ": " .. tostring(err), 0) end
  return doc.vectors or doc
end

local function unhex(s)
  return s and assert(sts.unhex(s))
end
local hex = sts.hex

-- The handshake options of one side ("init" or "resp") of vector v.
local function side(v, who, protocol)
  local psks
  if v[who .. "_psks"] then
    psks = {}
    for i, p in ipairs(v[who .. "_psks"]) do psks[i] = unhex(p) end
  end
  return {
    protocol = protocol, initiator = who == "init",
    prologue = unhex(v[who .. "_prologue"]) or "",
    s = unhex(v[who .. "_static"]), e = unhex(v[who .. "_ephemeral"]),
    rs = unhex(v[who .. "_remote_static"]), re = unhex(v[who .. "_remote_ephemeral"]),
    psks = psks,
  }
end

local function expect(ok, fmt, ...)
  if not ok then error(string.format(fmt, ...), 0) end
end

-- Sends message i (1-based) of v and checks it. During the handshake the
-- side whose turn it is writes; after it, messages continue to alternate
-- (message i from the initiator when i is odd), or all come from the
-- initiator in a one-way pattern.
local function run_message(st, i, m)
  local payload, want = unhex(m.payload), unhex(m.ciphertext)
  local ct, got, err
  if not st.ciphers then
    local from_init = st.ini:action() == "write"
    local w, r = st.ini, st.res
    if not from_init then w, r = st.res, st.ini end
    ct, err = w:write(payload)
    expect(ct, "message %d: write failed: %s", i, err)
    expect(ct == want, "message %d: ciphertext %s, expected %s", i, hex(ct), hex(want))
    got, err = r:read(ct)
    expect(got, "message %d: read failed: %s", i, err)
    if st.ini:action() == "split" then st.handshake_end = i end
  else
    local one_way = st.handshake_end == 1
    local from_init = one_way or i % 2 == 1
    local send = from_init and st.ciphers.init_send or st.ciphers.resp_send
    local recv = from_init and st.ciphers.resp_recv or st.ciphers.init_recv
    ct, err = send:encrypt(payload)
    expect(ct, "message %d: encrypt failed: %s", i, err)
    expect(ct == want, "message %d: ciphertext %s, expected %s", i, hex(ct), hex(want))
    got, err = recv:decrypt(ct)
    expect(got, "message %d: decrypt failed: %s", i, err)
  end
  expect(got == payload, "message %d: payload %s, expected %s", i, hex(got), hex(payload))
end

local function split(st, v)
  local h = st.ini:hash()
  expect(h == st.res:hash(), "the two sides' handshake hashes differ")
  if v.handshake_hash then
    expect(h == unhex(v.handshake_hash), "handshake hash %s, expected %s", hex(h), v.handshake_hash)
  end
  local c = {}
  c.init_send, c.init_recv = st.ini:split()
  c.resp_send, c.resp_recv = st.res:split()
  expect(c.init_send and c.resp_send, "split failed")
  st.ciphers = c
end

-- Returns "pass", "skip" (with the reason) or raises the failure.
local function run_vector(v, protocol)
  -- The name alone first: another suite's keys (448's are 56 bytes) would be
  -- refused as arguments before the name was looked at.
  local _, err = sts.noise.handshake{ protocol = protocol, initiator = true }
  if err and err:find("unsupported", 1, true) then return "skip", err end
  local ini, res
  ini, err = sts.noise.handshake(side(v, "init", protocol))
  expect(ini, "initiator: %s", err)
  res, err = sts.noise.handshake(side(v, "resp", protocol))
  expect(res, "responder: %s", err)
  local st = { ini = ini, res = res }
  for i, m in ipairs(v.messages) do
    run_message(st, i, m)
    if st.handshake_end == i then split(st, v) end
  end
  expect(st.ciphers, "the handshake did not finish in %d messages", #v.messages)
  return "pass"
end

local counts = { pass = 0, fail = 0, skip = 0 }
for n, v in ipairs(read_vectors(path)) do
  local protocol = v.protocol_name or v.name
  local ok, result = pcall(run_vector, v, protocol)
  if not ok then
    print(string.format("FAIL %s (vector %d): %s", tostring(protocol), n, tostring(result)))
    result = "fail"
  end
  counts[result] = counts[result] + 1
end
print(string.format("%d passed, %d failed, %d skipped", counts.pass, counts.fail, counts.skip))
os.exit(counts.fail == 0 and 0 or 1)
