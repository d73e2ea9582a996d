ft-train --help
