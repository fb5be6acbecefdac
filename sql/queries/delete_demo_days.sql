-- delete_demo_days
DELETE FROM demo.customer_activity WHERE ds = ANY(:days)
