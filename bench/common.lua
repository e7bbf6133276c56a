-- Helpers the Lua benches share: medians and percentiles, and what /proc
-- says about a process (CPU seconds, resident memory), and throughput rounds
-- measured by the CPU of sender, broker and receiver. A bench loads it with
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

--- The items of a comma-separated list ("64,1024"), numbers where they are.
function common.list(text)
  local items = {}
  for item in tostring(text):gmatch("[^,%s]+") do items[#items + 1] = tonumber(item) or item end
  return items
end

--- The AEAD backend of the build running this script, and where it was read:
-- sts does not expose it, so it is STS_AEAD_BACKEND in the CMakeCache.txt of
-- STS_BUILD_DIR, else of the directory holding the sts-lua executable.
function common.aead_backend(sts_lua)
  local dir = os.getenv("STS_BUILD_DIR") or (sts_lua or ""):match("^(.*)/[^/]*$") or "."
  local cache = read(dir .. "/CMakeCache.txt") or ""
  return cache:match("\nSTS_AEAD_BACKEND:%w+=(%w+)") or "unknown", dir
end

--- One throughput round through a broker: the receiver started first (it
-- prints "ready", or is given half a second when `ready` is false), then the
-- sender, both through common.with_cpu; the broker, a long-lived process,
-- sampled around the round. Returns { rate, received, sender, broker,
-- receiver } (msg/s as the receiver prints it, CPU seconds), or nil and the
-- receiver's output if it never ended (a C receiver waits for every message).
function common.throughput_round(test, broker_pid, recv_cmd, send_cmd, ready)
  local broker0 = common.cpu_seconds(broker_pid)
  local receiver = test.spawn(common.with_cpu(recv_cmd))
  if ready == false then
    require("sts").sleep(0.5)
  else
    assert(receiver:wait_for("ready"), receiver:output())
  end
  local sender = test.spawn(common.with_cpu(send_cmd))
  local sent = sender:wait_for("child%-stat", 300)
  local received = sent and receiver:wait_for("child%-stat", 30)
  sender:kill()
  receiver:kill()
  assert(sent, "sender: " .. sender:output())
  local out = receiver:output()
  if not received then return nil, out end
  return { rate = tonumber(out:match("(%d+) msg/s")) or 0, received = tonumber(out:match("received (%d+)")) or 0,
           sender = common.child_cpu(sender:output()), receiver = common.child_cpu(out),
           broker = common.cpu_seconds(broker_pid) - broker0 }
end

--- The CPU in µs per received message of a round's three processes together.
function common.round_cpu(r)
  return 1e6 * (r.sender + r.broker + r.receiver) / math.max(r.received, 1)
end

--- The medians of rounds from common.throughput_round: msg/s, the fewest
-- received, and the CPU per received message in µs of each process and of
-- the three together (the median of the rounds' sums).
function common.throughput_summary(rounds)
  local function med(f)
    local list = {}
    for k, r in ipairs(rounds) do list[k] = f(r) end
    return common.median(list)
  end
  local function us(r, cpu) return 1e6 * cpu / math.max(r.received, 1) end
  local fewest = math.huge
  for _, r in ipairs(rounds) do fewest = math.min(fewest, r.received) end
  return {
    rate = med(function(r) return r.rate end), fewest = fewest, rounds = #rounds,
    sender = med(function(r) return us(r, r.sender) end),
    broker = med(function(r) return us(r, r.broker) end),
    receiver = med(function(r) return us(r, r.receiver) end),
    total = med(common.round_cpu),
  }
end

--- What a bench's data file says it measured: "commit abc1234" of the
-- working tree (with "+ uncommitted changes" when files other than the data
-- and figures differ from it) and the UTC date.
function common.provenance()
  local function sh(cmd)
    local p = io.popen(cmd .. " 2>/dev/null")
    local out = p:read("a")
    p:close()
    return out
  end
  local commit = sh("git rev-parse --short HEAD"):match("%x+") or "unknown"
  local dirty = sh("git status --porcelain -uno -- . ':!bench/data' ':!docs/figures'") ~= ""
  return string.format("commit %s%s, %s", commit, dirty and " + uncommitted changes" or "", os.date("!%Y-%m-%d"))
end

--- Writes rows of numbers or words as a whitespace-separated table that
-- gnuplot reads (bench/plot): the lines of `about` (a string or a list, may
-- be nil) as comments, then `header`, the column names, as the last comment
-- line, then one line per row. Creates the file's directory.
function common.write_table(path, header, rows, about)
  local dir = path:match("^(.*)/[^/]*$")
  if dir then assert(os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'"), "mkdir " .. dir) end
  local lines = {}
  for _, line in ipairs(type(about) == "table" and about or { about }) do lines[#lines + 1] = "# " .. line end
  lines[#lines + 1] = "# " .. table.concat(header, " ")
  for _, row in ipairs(rows) do
    local fields = {}
    for k, v in ipairs(row) do
      fields[k] = math.type(v) == "float" and string.format("%.6g", v) or tostring(v)
    end
    lines[#lines + 1] = table.concat(fields, " ")
  end
  local f = assert(io.open(path, "w"))
  assert(f:write(table.concat(lines, "\n"), "\n"))
  assert(f:close())
end

return common
