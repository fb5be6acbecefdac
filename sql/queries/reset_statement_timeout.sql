-- reset_statement_timeout
SET LOCAL statement_timeout TO DEFAULT
