"""Signal names shared by workflows that signal each other (the branch tells a loop run its
turn ended). Named once here so the two modules need not import each other."""

LOOP_TURN_FINISHED = "turn_finished"
