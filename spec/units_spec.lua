-- The systemd units of configs/systemd/, as installed: `cmake --install` into
-- a staging root, the units' /usr/bin commands pointed at the staged ones,
-- then `systemd-analyze verify` (every directive known, every command there
-- and executable) and `systemd-analyze security --offline` (how exposed the
-- service is; systemd calls up to 2.0 "OK").
local test = require "sts.test"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

describe("the systemd units", function()
  local root, units, staged
  setup(function()
    local build = assert(os.getenv("STS_BUILD_DIR"), "STS_BUILD_DIR names the build tree")
    root = test.tmpdir()
    local ok, out = sh(string.format("DESTDIR=%s cmake --install %s --prefix /usr", test.quote(root), test.quote(build)))
    assert(ok, out)
    staged = test.tmpdir()
    units = {}
    local p = assert(io.popen("ls " .. test.quote(root .. "/usr/lib/systemd/system")))
    for name in p:lines() do
      -- A template is verified as one of its instances.
      local as = name:gsub("@%.service$", "@example.service")
      local text = test.read_file(root .. "/usr/lib/systemd/system/" .. name)
      test.write_file(staged .. "/" .. as, (text:gsub("/usr/bin/", root .. "/usr/bin/")))
      units[#units + 1] = as
    end
    p:close()
  end)
  teardown(test.cleanup)

  it("are installed: the template and the two services", function()
    table.sort(units)
    assert.same({ "sts-keyserver.service", "sts-lab-responder.service", "sts-lua@example.service" }, units)
  end)

  it("pass systemd-analyze verify without a word", function()
    for _, unit in ipairs(units) do
      local ok, out = sh(string.format("cd %s && systemd-analyze verify --man=no ./%s", test.quote(staged), unit))
      assert.is_true(ok, out)
      assert.equal("", out, unit)
    end
  end)

  it("are notify services, hardened to an exposure systemd calls OK", function()
    for _, unit in ipairs(units) do
      local text = test.read_file(staged .. "/" .. unit)
      assert.matches("\nType=notify\n", text, unit)
      assert.matches("\nDynamicUser=yes\n", text, unit)
      assert.matches("\nStateDirectory=", text, unit)
      local ok, out = sh(string.format("cd %s && systemd-analyze security --offline=yes --no-pager ./%s",
        test.quote(staged), unit))
      local exposure = tonumber(out:match("Overall exposure level for [^:]+: ([%d.]+)"))
      assert.truthy(ok and exposure, out)
      assert.is_true(exposure <= 2.0, unit .. ": exposure " .. exposure)
    end
  end)
end)
