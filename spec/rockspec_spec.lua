-- The rockspec: `luarocks make` in a copy of the source tree builds and
-- installs the sts module into a temporary rocks tree, where plain lua5.4
-- finds it (and sts.test) through `luarocks path`.
local test = require "sts.test"

local function luarocks_installed()
  return os.execute("command -v luarocks >/dev/null")
end

describe("the rockspec", function()
  teardown(test.cleanup)

  it("builds and installs the sts module for plain Lua 5.4 with luarocks make", function()
    if not luarocks_installed() then
      pending("luarocks is not installed (apt-get install luarocks; CI installs it)")
      return
    end
    local rockspec = assert(io.popen("ls sts-lua-*.rockspec")):read("l")
    assert(rockspec, "no sts-lua-*.rockspec at the top of the source tree")
    local dir = test.tmpdir()
    local src, tree = dir .. "/src", dir .. "/tree"
    local q = test.quote
    local p = test.spawn(table.concat({
      ("mkdir -p %s"):format(q(src)),
      ("tar --exclude='./build*' --exclude=./.git --exclude=./fuzz/corpus -cf - . | tar -xf - -C %s"):format(q(src)),
      ("cd %s && luarocks --lua-version 5.4 --tree %s make %s"):format(q(src), q(tree), q(rockspec)),
      ([[eval "$(luarocks --lua-version 5.4 --tree %s path)" && cd %s && lua5.4 -e %s]]):format(q(tree), q(dir),
        q([[local sts = require "sts"; require "sts.test"
            print("module", package.searchpath("sts", package.cpath), sts.version)]])),
    }, " && "), dir)
    assert.truthy(p:wait(280), "luarocks make did not finish")
    local out = p:output()
    assert.equal(0, p:exit_code(), out)
    assert.matches("module\t" .. tree:gsub("%p", "%%%0") .. "/lib/lua/5%.4/sts%.so\t%d+%.%d+%.%d+\n", out)
  end)
end)
