-- wrk script for scripts/bench's read mode: GET one order, picked at random from the
-- ids in the file named by WRK_ORDER_IDS (one per line).
local ids = {}
for line in io.lines(os.getenv("WRK_ORDER_IDS")) do ids[#ids + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/oms/orders/" .. ids[math.random(#ids)])
end
