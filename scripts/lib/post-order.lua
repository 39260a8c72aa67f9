-- wrk script for scripts/probes/post_one_client.sh: POST one new order per request,
-- each with its own Idempotency-Key and two items of the products probe-0..probe-9,
-- as loadgen's orders have.
local n = 0
local run = os.time()
request = function()
  n = n + 1
  local a, b = n % 10, (n * 7 + 3) % 10
  local body = string.format('{"userId":"user-%d","orderItems":[{"productId":"probe-%d","quantity":1},{"productId":"probe-%d","quantity":1}]}', n % 100, a, b)
  return wrk.format("POST", "/oms/orders", {["Content-Type"] = "application/json", ["Idempotency-Key"] = string.format("probe-%d-%d", run, n)}, body)
end
