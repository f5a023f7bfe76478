"""nbval executes the chapter notebooks with their solutions; the student copies in student/ have stubs instead."""

collect_ignore = ["student"]
