-- Log lines as a service manager reads them: with stderr the journal
-- (JOURNAL_STREAM naming the very file stderr is, as systemd sets it), a
-- syslog priority and no timestamp; otherwise timestamped. And an STS_LOG
-- that is no level is said, not ignored. Real sts-lua processes.
local test = require "sts.test"

local CHUNK = [[
local sts = require "sts"
sts.log.debug("a debug line")
sts.log.info("an info line")
sts.log.warn("a warn line")
sts.log.error("an error line")
io.stdout:write("journal=", tostring(sts.log.journal), " level=", sts.log.level, "\n")
]]

local dir

-- "DEVICE:INODE" of path, in decimal, as systemd writes JOURNAL_STREAM.
local function device_inode(path)
  local p = assert(io.popen("stat -c %d:%i " .. test.quote(path)))
  local id = p:read("l")
  p:close()
  return id
end

-- Runs the chunk with env (a shell prefix) and stderr appended to a file made
-- first; returns its stdout and what it wrote to stderr, and the file.
local function run(env, journal_of, chunk)
  local err = string.format("%s/stderr-%d", dir, math.random(1 << 30))
  test.write_file(err, "")
  local prefix = env or ""
  if journal_of then prefix = prefix .. " JOURNAL_STREAM=" .. device_inode(journal_of(err)) end
  local p = assert(io.popen(string.format("%s %s -e %s 2>>%s", prefix, test.quote(test.sts_lua()),
    test.quote(chunk or CHUNK), test.quote(err))))
  local out = p:read("a")
  p:close()
  return out, test.read_file(err)
end

describe("log lines", function()
  setup(function() dir = test.tmpdir() end)
  teardown(test.cleanup)

  it("carry a syslog priority and no timestamp when stderr is the journal", function()
    local out, err = run("STS_LOG=debug", function(stderr) return stderr end)
    assert.equal("journal=true level=debug\n", out)
    assert.equal("<7>a debug line\n<6>an info line\n<4>a warn line\n<3>an error line\n", err)
  end)

  it("are timestamped when JOURNAL_STREAM names another stream than stderr", function()
    local other = dir .. "/not-stderr"
    test.write_file(other, "")
    local out, err = run(nil, function() return other end)
    assert.equal("journal=false level=info\n", out)
    assert.not_matches("<%d>", err)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ info  an info line\n", err)
    assert.matches("Z warn  a warn line\n", err)
    assert.matches("Z error an error line\n", err)
    assert.not_matches("debug line", err)
  end)

  -- A KILL reason or a script's message may hold newlines: a line after one
  -- would be a new journal entry, with a forged priority if it began <N>.
  it("never let a message start a line of its own, its control characters escaped", function()
    local chunk = [[require("sts").log.warn("one\n<3>forged\r\ttab \1\27[31m\127 ok \\ é")]]
    local _, err = run(nil, function(stderr) return stderr end, chunk)
    -- Each line of the message carries the message's priority, <4>: journald takes the first <N>.
    assert.equal("<4>one\n<4>  <3>forged\\r\ttab \\x01\\x1b[31m\\x7f ok \\ é\n", err)
    _, err = run(nil, nil, chunk)
    assert.matches("Z warn  one\n    <3>forged\\r\ttab \\x01\\x1b%[31m\\x7f ok \\ é\n$", err)
  end)

  it("say so when STS_LOG is no level, naming the variable and the levels", function()
    local out, err = run("STS_LOG=bogus")
    assert.equal("journal=false level=info\n", out)
    assert.matches("warn  STS_LOG=bogus is not a log level %(debug, info, warn, error or off%); logging at info\n", err)
    assert.matches("info  an info line\n", err)
    out, err = run("STS_LOG=verbose", function(stderr) return stderr end)
    assert.equal("journal=true level=info\n", out)
    assert.matches("^<4>STS_LOG=verbose is not a log level", err)
  end)

  it("follow STS_LOG when it is a level", function()
    local _, err = run("STS_LOG=error")
    assert.not_matches("info line", err)
    assert.not_matches("warn line", err)
    assert.matches("error an error line\n", err)
    _, err = run("STS_LOG=off")
    assert.equal("", err)
  end)
end)
