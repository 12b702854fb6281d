"""The config wing: the file formats (scenarios, tournaments, task families), their validation and limits."""
