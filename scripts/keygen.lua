-- Makes an identity key pair: NAME.key (private, mode 0600) and NAME.pub,
-- and prints the public key's fingerprint.
--   sts-lua scripts/keygen.lua NAME [--force]
local cli = require "sts.cli"
local keyfiles = require "sts.keyfiles"

local opts, names = cli.parse(arg, {
  usage = "sts-lua scripts/keygen.lua NAME [--force]",
  positional = 1,
  options = { force = { "--force", flag = true } },
})
local name = names[1]

local fingerprint, err = keyfiles.write_pair(name, opts.force)
if not fingerprint then
  io.stderr:write(err, (err:match("exists$") and "; --force replaces them" or ""), "\n")
  os.exit(1)
end
print(string.format("%s.key, %s.pub: %s", name, name, fingerprint))
