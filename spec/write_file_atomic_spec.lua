-- sts.write_file_atomic: the whole file replaced at once, through a fresh
-- temporary file (never through a symbolic link at the path), mode 0644.
local sts = require "sts"
local test = require "sts.test"

local dir

local function stat(format, path)
  local p = assert(io.popen("stat -c " .. format .. " " .. test.quote(path)))
  local out = p:read("l")
  p:close()
  return out
end

local function entries()
  local p = assert(io.popen("ls -A " .. test.quote(dir)))
  local names = {}
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  table.sort(names)
  return names
end

describe("sts.write_file_atomic", function()
  before_each(function() dir = test.tmpdir() end)
  after_each(test.cleanup)

  it("replaces the file with exactly the data, mode 0644, leaving no temporary", function()
    local path = dir .. "/out.prom"
    assert.is_true(sts.write_file_atomic(path, "old\n"))
    local data = "new\0binary\255\n" .. string.rep("x", 100000)
    assert.is_true(sts.write_file_atomic(path, data))
    assert.equal(data, test.read_file(path))
    assert.equal("644", stat("%a", path))
    assert.same({ "out.prom" }, entries())
  end)

  it("replaces a symbolic link at the path, never writing through it", function()
    local target, path = dir .. "/target", dir .. "/link.prom"
    test.write_file(target, "keep me\n")
    assert(os.execute("ln -s " .. test.quote(target) .. " " .. test.quote(path)))
    assert.is_true(sts.write_file_atomic(path, "metrics\n"))
    assert.equal("keep me\n", test.read_file(target))
    assert.equal("regular file", stat("%F", path))
    assert.equal("metrics\n", test.read_file(path))
  end)

  it("says why it failed, naming the path, and leaves nothing behind", function()
    local path = dir .. "/missing/out.prom"
    local ok, err = sts.write_file_atomic(path, "x")
    assert.is_nil(ok)
    assert.matches(path, err, 1, true)
    assert.same({}, entries())
    assert.has_error(function() sts.write_file_atomic(path) end)
  end)
end)
