from csscert.cli import main

main()
