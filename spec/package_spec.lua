-- scripts/package packs the tests' own build as a .deb and checks it: the
-- dependencies computed (libedit, which the shell loads itself, recommended), unpacked with dpkg-deb -x and run, installed with
-- dpkg into a scratch root and run, lintian clean when lintian is installed.
local test = require "sts.test"

describe("scripts/package", function()
  teardown(test.cleanup)

  it("builds a .deb that unpacks, installs with dpkg and runs", function()
    local build = assert(os.getenv("STS_BUILD_DIR"), "STS_BUILD_DIR names the build tree")
    local out = test.tmpdir()
    local p = test.spawn(string.format("scripts/package -B %s --reuse --out %s", test.quote(build), test.quote(out)), out)
    assert.truthy(p:wait(280), "scripts/package did not finish")
    local log = p:output()
    assert.equal(0, p:exit_code(), log)
    assert.matches("Depends:[^\n]*liblua5%.4%-0[^\n]*libmosquitto1", log)
    assert.matches("Depends:[^\n]*libssl3", log) -- libcrypto, which the host too loads itself
    assert.matches("Recommends: libedit2\n", log) -- loaded only by the shell on a terminal
    assert.matches("unpacked with dpkg%-deb %-x and run: ok", log)
    assert.matches("installed with dpkg %-%-root and run: ok", log)
    assert.truthy(test.read_file(log:match("([^\n]+%.deb)\n$")), "no .deb named last:\n" .. log)
  end)
end)
