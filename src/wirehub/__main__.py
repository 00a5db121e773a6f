from wirehub.cli import main

main()
