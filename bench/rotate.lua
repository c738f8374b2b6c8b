-- wrk script: rotate through many prepared requests (one identity each), so a run touches many
-- cache entries instead of one. BENCH_REQUESTS names a file with one request per line: its
-- headers as "Name: value" separated by tabs. Each wrk thread starts at its own offset.

local requests = {}
local index = 0

local function split(text, sep)
   local out = {}
   for part in string.gmatch(text, "([^" .. sep .. "]+)") do
      out[#out + 1] = part
   end
   return out
end

function init(args)
   local path = wrk.path
   for line in io.lines(os.getenv("BENCH_REQUESTS")) do
      local headers = {}
      for _, field in ipairs(split(line, "\t")) do
         local name, value = string.match(field, "^([^:]+):%s*(.*)$")
         headers[name] = value
      end
      requests[#requests + 1] = wrk.format("GET", path, headers)
   end
   index = math.random(#requests)
end

function request()
   index = index + 1
   if index > #requests then
      index = 1
   end
   return requests[index]
end
