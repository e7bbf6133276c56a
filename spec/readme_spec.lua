-- The README's busted example, run as the README says, so it cannot rot.
local test = require "sts.test"

--- The text of the README's first ```lua block that holds a busted spec.
local function readme_spec_example()
  local readme = assert(test.read_file("README.md"), "run from the source tree")
  for block in readme:gmatch("```lua\n(.-)```") do
    if block:find('require "sts.test"', 1, true) and block:find("describe(", 1, true) then return block end
  end
end

describe("the README's busted example", function()
  teardown(test.cleanup)

  it("passes when run with sts-lua busted, as the README says", function()
    local example = assert(readme_spec_example(), "the README has no busted example")
    local dir = test.tmpdir()
    test.write_file(dir .. "/pong_spec.lua", example)
    local p = test.spawn(string.format("cd %s && %s /usr/bin/busted -o TAP pong_spec.lua",
      test.quote(dir), test.quote(test.sts_lua())))
    assert.truthy(p:wait(60), "busted did not finish")
    local out = p:output()
    assert.equal(0, p:exit_code(), out)
    assert.matches("ok 1 %- my handler answers pings", out)
    assert.matches("1..1", out, 1, true)
  end)
end)
