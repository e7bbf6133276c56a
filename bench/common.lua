-- Helpers the Lua benches share: medians and percentiles, and what /proc
-- says about a process (CPU seconds, resident memory). A bench loads it with
--   local common = dofile((arg[0]:match("^(.*)/") or ".") .. "/common.lua")
local common = {}

function common.median(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  if #s == 0 then return 0 end
  return #s % 2 == 1 and s[(#s + 1) // 2] or (s[#s // 2] + s[#s // 2 + 1]) / 2
end

function common.percentile(list, p)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  return s[math.max(1, math.ceil(#s * p))] or 0
end

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

--- VmRSS in kB of a process (a pid, or "self" by default).
function common.rss_kb(pid)
  local status = read("/proc/" .. (pid or "self") .. "/status")
  return status and tonumber(status:match("VmRSS:%s*(%d+)"))
end

local ticks
local function clock_ticks()
  if not ticks then
    local p = io.popen("getconf CLK_TCK")
    ticks = tonumber(p:read("l")) or 100
    p:close()
  end
  return ticks
end

-- The numeric fields of a /proc/PID/stat line, numbered as in proc(5):
-- the command name (field 2) may hold spaces, so fields are counted from
-- the parenthesis that closes it.
local function stat_fields(line)
  local fields, n = {}, 2
  for f in line:match("%) (.*)"):gmatch("%S+") do
    n = n + 1
    fields[n] = tonumber(f)
  end
  return fields
end

--- CPU seconds (user + system) a running process has used so far.
function common.cpu_seconds(pid)
  local line = read("/proc/" .. pid .. "/stat")
  if not line then return 0 / 0 end
  local f = stat_fields(line)
  return (f[14] + f[15]) / clock_ticks()
end

--- A shell command line that runs `cmd`, then prints its shell's stat line:
-- the shell has waited for cmd, so that line's cutime and cstime are cmd's
-- CPU time however briefly cmd outlived its work. Read by common.child_cpu.
function common.with_cpu(cmd)
  return cmd .. '; read -r s </proc/$$/stat; echo "child-stat $s"'
end

--- The CPU seconds of a command run through common.with_cpu, from its output.
function common.child_cpu(output)
  local line = output:match("child%-stat ([^\n]*)")
  if not line then return 0 / 0 end
  local f = stat_fields(line)
  return (f[16] + f[17]) / clock_ticks()
end

return common
