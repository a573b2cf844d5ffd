"""Lead pool tasks: returning neglected leads to the campus pool."""
