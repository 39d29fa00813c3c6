// Entry point of the command-line tool.
return 0;
