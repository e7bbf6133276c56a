--- sts.cli: command-line options for the scripts in scripts/.
--
--   local cli = require "sts.cli"
--   local opts, positional = cli.parse(arg, {
--     usage = "sts-lua scripts/x.lua NAME [--host H] [-p PORT] [-v]",
--     options = { host = { "--host", default = "localhost" },
--                 port = { "-p", "--port", number = true, default = 1883 },
--                 verbose = { "-v", "--verbose", flag = true } },
--   })
--
-- On a bad command line it prints the message and the usage on stderr and
-- exits with status 2, as command-line tools do.
local cli = {}

local function fail(spec, message)
  io.stderr:write(message, "\n", "usage: ", spec.usage, "\n")
  os.exit(2)
end

--- Parses `args` (a Lua `arg` table) against `spec`; returns the options
-- (with defaults filled in) and the list of positional arguments.
function cli.parse(args, spec)
  local by_switch, opts, positional = {}, {}, {}
  for name, o in pairs(spec.options or {}) do
    for _, switch in ipairs(o) do by_switch[switch] = name end
    opts[name] = o.default
  end
  local i = 1
  while i <= #args do
    local a = args[i]
    local name = by_switch[a]
    if a == "-h" or a == "--help" then
      io.stdout:write("usage: ", spec.usage, "\n")
      os.exit(0)
    elseif name then
      local o = spec.options[name]
      if o.flag then
        opts[name] = true
      else
        i = i + 1
        local value = args[i]
        if value == nil then fail(spec, a .. " needs a value") end
        if o.number then
          value = tonumber(value)
          if not value then fail(spec, a .. " needs a number, got '" .. args[i] .. "'") end
        end
        opts[name] = value
      end
    elseif a:sub(1, 1) == "-" and #a > 1 then
      fail(spec, "unknown option " .. a)
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  if spec.positional and #positional ~= spec.positional then
    fail(spec, string.format("expected %d argument(s), got %d", spec.positional, #positional))
  end
  return opts, positional
end

return cli
