"""Claims drawn from run files: what a sweep shows about batch size, each earned from the data and worded so
that the app, `report` and `report --json` say the same thing."""
