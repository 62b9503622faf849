from pixelgrade.cli import app

app(prog_name="pixelgrade")
