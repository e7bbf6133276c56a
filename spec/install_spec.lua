-- `cmake --install` into a temporary prefix, then moved elsewhere: the host,
-- the shell, the commands, plain lua5.4's `require "sts"` and busted all run
-- from there, with modules found relative to the executable.
local sts = require "sts"
local test = require "sts.test"

local q = test.quote

--- Runs a shell command line; returns its stdout+stderr and exit status.
local function sh(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  return out:gsub("exit=%d+\n$", ""), tonumber(out:match("exit=(%d+)\n$"))
end

--- Asserts that a command line exits 0; returns its output.
local function ok(cmd)
  local out, status = sh(cmd)
  assert(status == 0, ("exit %s from %s:\n%s"):format(status, cmd, out))
  return out
end

--- The environment of a user who has nothing of the build: no LUA_PATH,
-- no STS_LUA, a working directory outside the source tree. A sanitizer
-- build's sts.so needs the sanitizer runtime preloaded into plain lua5.4.
local function user_env(dir, extra)
  local env = "cd " .. q(dir) .. " && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u STS_LUA -u STS_BUILD_DIR "
  return env .. (extra or "") .. " "
end

local function asan_preload(so)
  -- The runtime ctest names (spec/CMakeLists.txt: clang links none into sts.so), else gcc's libasan that sts.so links.
  local asan = os.getenv("STS_SANITIZER_RUNTIME")
    or sh("ldd " .. q(so) .. " | awk '/libasan/ { print $3 }'"):match("[^\n]+")
  return asan and ("LD_PRELOAD=" .. q(asan) .. " ASAN_OPTIONS=detect_leaks=0") or ""
end

describe("an installed tree", function()
  local prefix, work, broker

  setup(function()
    local build = assert(os.getenv("STS_BUILD_DIR"), "STS_BUILD_DIR names the build tree")
    local root = test.tmpdir()
    ok(("cmake --install %s --prefix %s >/dev/null"):format(q(build), q(root .. "/configured")))
    -- Moved after installing: nothing may depend on the prefix it was given.
    prefix = root .. "/moved/prefix"
    ok(("mkdir -p %s && mv %s %s"):format(q(root .. "/moved"), q(root .. "/configured"), q(prefix)))
    work = test.tmpdir()
    broker = test.broker()
  end)
  teardown(function()
    broker:stop()
    test.cleanup()
  end)

  it("holds the host, its modules, the commands, the docs, the configs and the man pages", function()
    for _, path in ipairs({ "bin/sts-lua", "bin/sts-keygen", "bin/sts-keyserver", "bin/sts-group-chat",
                            "bin/sts-lab-client", "bin/sts-lab-responder",
                            "share/lua/5.4/sts/test.lua", "share/lua/5.4/sts/shell.lua",
                            "share/sts-lua/keygen.lua", "share/doc/sts-lua/API.md",
                            "share/doc/sts-lua/copyright", "share/doc/sts-lua/examples/configs/nosec",
                            "share/doc/sts-lua/examples/secure-gateway.lua",
                            "share/man/man1/sts-lua.1.gz", "share/man/man1/sts-lua-shell.1.gz",
                            "share/man/man1/sts-keygen.1.gz", "share/man/man7/sts-lua-api.7.gz" }) do
      assert(test.read_file(prefix .. "/" .. path), "not installed: " .. path)
    end
    -- A man page whatis can index, and the API's generated from docs/API.md.
    assert.matches('%.TH "sts%-lua" "1"', ok("gzip -dc " .. q(prefix .. "/share/man/man1/sts-lua.1.gz")))
    local api = ok("gzip -dc " .. q(prefix .. "/share/man/man7/sts-lua-api.7.gz"))
    assert.matches("NAME\n%.LP\nsts%-lua%-api", api)
    assert.truthy(api:find("sts.connect", 1, true))
  end)

  it("runs the host with its modules found relative to the executable", function()
    local out = ok(user_env(work) .. q(prefix .. "/bin/sts-lua")
      .. [[ -e 'print(require "sts".version, require "sts.test" ~= nil, package.searchpath("sts.shell", package.path))']])
    assert.matches("^%d+%.%d+%.%d+\ttrue\t" .. prefix:gsub("%p", "%%%0") .. "/bin/%.%./share/lua/5%.4/sts/shell%.lua\n$", out)
    -- LUA_PATH still adds modules, as for lua; sts's own stay first.
    test.write_file(work .. "/extra.lua", "return 'extra'")
    out = ok(user_env(work, "LUA_PATH='./?.lua;;'") .. q(prefix .. "/bin/sts-lua")
      .. [[ -e 'print(require "extra", require "sts.cli" ~= nil)']])
    assert.equal("extra\ttrue\n", out)
    assert.matches("sts%-lua%(1%)", ok(user_env(work) .. q(prefix .. "/bin/sts-lua") .. " --help"))
  end)

  it("opens the shell, which starts an example config's session", function()
    local config = test.read_file(prefix .. "/share/doc/sts-lua/examples/configs/nosec")
    test.write_file(work .. "/nosec", (config:gsub("\nport = %d+", "\nport = " .. broker.port)))
    local watcher = assert(sts.connect(broker:options()))
    local got
    assert(watcher:subscribe("m2s", function(_, payload) got = payload end))
    local out = ok(user_env(work) .. "printf 'help\\nstart nosec\\nsend installed\\nstatus\\n' | " .. q(prefix .. "/bin/sts-lua"))
    assert.matches("start CONFIG", out)
    assert.matches("connected", out)
    assert.equal("installed", test.wait_until(function() return got end, 5))
    watcher:close()
  end)

  it("runs the commands from PATH, through a symbolic link too", function()
    local out = ok(user_env(work, "PATH=" .. q(prefix .. "/bin") .. ":$PATH") .. "sts-keygen sensor-7")
    assert.matches("sensor%-7%.key, sensor%-7%.pub: SHA256:", out)
    assert.equal("600", test.file_mode(work .. "/sensor-7.key"))
    ok("ln -s " .. q(prefix .. "/bin/sts-keygen") .. " " .. q(work .. "/keygen-link"))
    assert.matches("gateway%.pub", ok(user_env(work) .. "./keygen-link gateway"))
    local usage, status = sh(user_env(work) .. q(prefix .. "/bin/sts-lab-client"))
    assert.equal(2, status)
    assert.matches("usage:", usage)
  end)

  it("gives plain lua5.4 the sts module and sts.test through LUA_CPATH and LUA_PATH", function()
    local so = ok("find " .. q(prefix) .. " -name sts.so"):match("[^\n]+")
    assert(so, "sts.so is not installed")
    local paths = ("LUA_CPATH=%s LUA_PATH=%s"):format(q(so:gsub("sts%.so$", "?.so")),
      q(prefix .. "/share/lua/5.4/?.lua;;"))
    local out = ok(user_env(work, paths .. " " .. asan_preload(so)) .. "lua5.4 -e " .. q(([[
      local sts = require "sts"
      local test = require "sts.test"
      local c = assert(sts.connect{ host = "127.0.0.1", port = %d })
      local got
      assert(c:subscribe("lua54", function(_, p) got = p end))
      assert(c:publish("lua54", "from plain lua"))
      print(test.wait_until(function() return got end, 5))
      c:close()]]):format(broker.port)))
    assert.equal("from plain lua\n", out)
  end)

  it("runs busted specs inside the installed host", function()
    test.write_file(work .. "/installed_spec.lua", [[
      local sts = require "sts"
      local test = require "sts.test"
      describe("the installed sts.test", function()
        it("starts a broker and round-trips a message", function()
          local broker = test.broker()
          local c = assert(sts.connect(broker:options()))
          local got
          assert(c:subscribe("t", function(_, p) got = p end))
          assert(c:publish("t", "via busted"))
          assert.equal("via busted", test.wait_until(function() return got end, 5))
          c:close()
          broker:stop()
          test.cleanup()
        end)
      end)]])
    local out = ok(user_env(work) .. q(prefix .. "/bin/sts-lua") .. " /usr/bin/busted -o TAP installed_spec.lua")
    assert.matches("ok 1 %- the installed sts.test starts a broker and round%-trips a message", out)
  end)
end)
