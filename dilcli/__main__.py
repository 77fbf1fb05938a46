from dilcli.cli import main

main()
