-- The table named :t (schema-qualified, quoted as needed), or NULL when it does not exist.
SELECT to_regclass(:t)
