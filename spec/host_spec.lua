-- The sts-lua command line: the lua interpreter's, plus --help and --version.
local test = require "sts.test"

-- Runs sts-lua (or the host given) with the given shell-quoted arguments,
-- stdin text and environment assignments (a shell prefix); returns
-- stdout+stderr and the exit status.
local function run(args, stdin, env, host)
  local dir = test.tmpdir()
  local input = dir .. "/stdin"
  test.write_file(input, stdin or "")
  local p = io.popen(string.format("%s%s %s <%s 2>&1; echo \"exit=$?\"", env or "", test.quote(host or test.sts_lua()), args, test.quote(input)))
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("exit=(%d+)\n$"))
  return out:gsub("exit=%d+\n$", ""), status
end

describe("the sts-lua command line", function()
  teardown(test.cleanup)

  it("runs a script with its arguments in arg and ...", function()
    local dir = test.tmpdir()
    test.write_file(dir .. "/args.lua", "print(arg[0], arg[1], arg[2], select('#', ...), ...)")
    local out, status = run(test.quote(dir .. "/args.lua") .. " one two")
    assert.equal(0, status)
    assert.equal(dir .. "/args.lua\tone\ttwo\t2\tone\ttwo\n", out)
  end)

  it("runs -e chunks and -l libraries in order, then the script", function()
    local out, status = run("-l sts -e \"print(type(sts.connect))\" -e \"print(2)\"")
    assert.equal(0, status)
    assert.equal("function\n2\n", out)
    out = run("-l s=sts -e \"print(s.version)\"")
    assert.matches("^%d+%.%d+%.%d+\n$", out)
  end)

  it("prints its version and Lua's with -v and --version", function()
    for _, flag in ipairs({ "-v", "--version" }) do
      local out, status = run(flag)
      assert.equal(0, status)
      assert.matches("^sts%-lua %d+%.%d+%.%d+ %(Lua 5%.4", out)
    end
  end)

  it("prints usage with --help, and refuses unknown options", function()
    local out, status = run("--help")
    assert.equal(0, status)
    assert.matches("usage:", out)
    out, status = run("--frobnicate")
    assert.equal(1, status)
    assert.matches("unrecognized option '%-%-frobnicate'", out)
    out, status = run("-e")
    assert.equal(1, status)
    assert.matches("'%-e' needs argument", out)
  end)

  it("reads the script from stdin with -, and stops options at --", function()
    local out, status = run("- a b", "print(table.concat({...}, ','), arg[0])")
    assert.equal(0, status)
    assert.equal("a,b\t-\n", out)
    local dir = test.tmpdir()
    test.write_file(dir .. "/-v", "print('a script named -v')")
    out = run("-- " .. test.quote(dir .. "/-v"))
    assert.equal("a script named -v\n", out)
  end)

  it("exits 1 with the message and a traceback on a script error", function()
    local dir = test.tmpdir()
    test.write_file(dir .. "/fails.lua", "local function inner() error('broken on purpose') end\ninner()\n")
    local out, status = run(test.quote(dir .. "/fails.lua"))
    assert.equal(1, status)
    assert.matches("fails.lua:1: broken on purpose", out)
    assert.matches("stack traceback:", out)
    assert.matches("in local 'inner'", out)
    out, status = run("-e \"x = = 1\"")
    assert.equal(1, status)
    assert.matches("unexpected symbol", out)
  end)

  it("enters the interactive loop with -i, evaluating expressions", function()
    local out, status = run("-i", "return 1 + 1\n6 * 7\nt = {\n1 }\nprint(#t)\n")
    assert.equal(0, status)
    assert.matches("^sts%-lua", out)
    assert.matches("\n2\n42\n1\n$", out)
  end)

  it("lists the environment, the exit status and the man pages in --help", function()
    local out = run("--help")
    for _, word in ipairs({ "STS_LOG", "LUA_PATH", "LUA_INIT", "JOURNAL_STREAM", "NOTIFY_SOCKET", "%-E", "%-W", "Exit status", "sts%-lua%(1%)", "sts%-lua%-api%(7%)" }) do
      assert.matches(word, out)
    end
  end)

  it("ignores LUA_INIT and LUA_PATH with -E, and turns warnings on with -W", function()
    local env = "LUA_INIT='print(\"init ran\")' LUA_PATH='/nowhere/?.lua' "
    local out = run("-e \"print(package.path:find('/nowhere/', 1, true) ~= nil)\"", nil, env)
    assert.equal("init ran\ntrue\n", out)
    out = run("-E -e \"print(package.path:find('/nowhere/', 1, true) ~= nil)\"", nil, env)
    assert.equal("false\n", out)
    assert.equal("Lua warning: on purpose\n", (run("-W -e \"warn('on purpose')\"")))
    assert.equal("", (run("-e \"warn('on purpose')\"")))
  end)

  it("loads libmosquitto and libcrypto only when it first calls them", function()
    local broker = test.broker()
    local dir = test.tmpdir()
    test.write_file(dir .. "/lazy.lua", [[
      local function mapped(lib)
        local maps = assert(io.open("/proc/self/maps")):read("a")
        return maps:find("/" .. lib .. ".so", 1, true) ~= nil
      end
      local sts = require "sts"
      print("idle", mapped("libmosquitto"), mapped("libcrypto"))
      local key = string.rep("k", 32)
      print("computing", mapped("libmosquitto"), sts.decrypt(key, sts.encrypt(key, "reading")))
      local c = assert(sts.connect{ host = "127.0.0.1", port = tonumber(arg[1]), timeout = 5 })
      print("connected", c:connected(), mapped("libmosquitto"), mapped("libcrypto"))
    ]])
    local out, status = run(test.quote(dir .. "/lazy.lua") .. " " .. broker.port)
    assert.equal(0, status)
    assert.equal("idle\tfalse\tfalse\ncomputing\tfalse\treading\nconnected\ttrue\ttrue\ttrue\n", out)
  end)

  it("exits 127 naming the library when one it loads later is missing", function()
    local dir = test.tmpdir()
    local host = assert(io.open(test.sts_lua(), "rb")):read("a")
    if host:sub(1, 4) ~= "\127ELF" then
      -- scripts/cross's wrapper, which runs the target's host under qemu
      pending("sts-lua is a wrapper script, not the host itself")
      return
    end
    -- The same host, looking for a libmosquitto that no system has.
    local broken, n = host:gsub("(libmosquitto%.so%.)(%d+)", function(name, v) return name .. ("x"):rep(#v) end)
    assert.equal(1, n)
    test.write_file(dir .. "/sts-lua", broken, "755")
    local out, status = run("-e \"print(require 'sts'.version); require 'sts'.connect{ host = '127.0.0.1', port = 1 }; print 'connected'\"",
      nil, nil, dir .. "/sts-lua")
    assert.matches("^%d+%.%d+%.%d+\n", out)
    assert.matches("error cannot load a library it needs: libmosquitto%.so%.x+: cannot open shared object file", out)
    assert.not_matches("connected", out)
    assert.equal(127, status)
  end)

  it("finds the project's Lua modules", function()
    local out, status = run("-e \"print(require('sts.cli') ~= nil, require('sts.test') ~= nil)\"")
    assert.equal(0, status)
    assert.equal("true\ttrue\n", out)
  end)
end)
